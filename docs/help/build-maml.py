#!/usr/bin/env python3
"""Builds module/en-US/MailOps.PowerShell.dll-Help.xml (MAML) from docs/help/<Verb-Noun>.md.

The markdown is the source of the words: one file per cmdlet with SYNOPSIS, DESCRIPTION, EXAMPLES
(### title, a powershell code block, then remarks), PARAMETERS (### -Name, then text), INPUTS,
OUTPUTS, NOTES. docs/help/cmdlets.json (written by Export-CmdletMetadata.ps1 from the compiled
cmdlets) is the source of the facts: parameter sets for SYNTAX, and per parameter its type,
whether it is required, its position, pipeline input, aliases and wildcards.
Run it after editing the help; a test fails when the committed MAML is not what it builds.
Usage: build-maml.py [OUTPUT]   (default: module/en-US/MailOps.PowerShell.dll-Help.xml)
"""
import json, pathlib, re, sys
from xml.sax.saxutils import escape

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def sections(text):
    out, name = {}, None
    for line in text.splitlines():
        m = re.match(r"^## (\w+)\s*$", line)
        if m:
            name = m.group(1)
            out[name] = []
        elif name:
            out[name].append(line)
    return {k: "\n".join(v).strip() for k, v in out.items()}


def subsections(text):
    parts = re.split(r"^### (.+)$", text, flags=re.M)
    return [(parts[i].strip(), parts[i + 1].strip()) for i in range(1, len(parts), 2)]


def paras(text, indent):
    pad = " " * indent
    return "\n".join(f"{pad}<maml:para>{escape(p.strip())}</maml:para>" for p in re.split(r"\n\s*\n", text) if p.strip())


METADATA = {c["name"]: c for c in json.loads((HERE / "cmdlets.json").read_text(encoding="utf-8"))}
NAMED = -2147483648


def position(p):
    return "named" if p["position"] == NAMED else str(p["position"])


def pipeline_input(p):
    how = [w for w, on in (("ByValue", p["byValue"]), ("ByPropertyName", p["byPropertyName"])) if on]
    return f"True ({', '.join(how)})" if how else "False"


def occurrences(meta, name):
    """The parameter as it appears in each parameter set that has it."""
    return [q for ps in meta["parameterSets"] for q in ps["parameters"] if q["name"] == name]


def syntax(meta):
    items = []
    for ps in meta["parameterSets"]:
        parts = []
        for q in ps["parameters"]:
            info = meta["parameters"].get(q["name"], {"type": "SwitchParameter", "switch": True, "wildcards": False})
            value = "" if info["switch"] else f"""
          <command:parameterValue required="true" variableLength="false">{escape(info["type"])}</command:parameterValue>"""
            parts.append(f"""        <command:parameter required="{str(q["mandatory"]).lower()}" variableLength="true" globbing="{str(info["wildcards"]).lower()}" pipelineInput="{pipeline_input(q)}" position="{position(q)}" aliases="none">
          <maml:name>{escape(q["name"])}</maml:name>{value}
        </command:parameter>""")
        nl = "\n"
        items.append(f"""      <command:syntaxItem>
        <maml:name>{meta["name"]}</maml:name>
{nl.join(parts)}
      </command:syntaxItem>""")
    return "\n".join(items)


def command(path):
    name = path.stem
    verb, noun = name.split("-", 1)
    meta = METADATA[name]
    s = sections(path.read_text(encoding="utf-8"))
    examples = []
    for number, (title, body) in enumerate(subsections(s["EXAMPLES"]), start=1):
        title = re.sub(r"^Example \d+:\s*", "", title)
        m = re.search(r"```powershell\n(.*?)```", body, flags=re.S)
        code = m.group(1).strip() if m else ""
        remarks = body[m.end():].strip() if m else body
        examples.append(f"""      <command:example>
        <maml:title>----- Example {number}: {escape(title)} -----</maml:title>
        <dev:code>{escape(code)}</dev:code>
        <dev:remarks>
{paras(remarks, 10) or '          <maml:para></maml:para>'}
        </dev:remarks>
      </command:example>""")
    parameters = []
    for title, body in subsections(s["PARAMETERS"]):
        pname = title.lstrip("-")
        info = meta["parameters"][pname]  # a KeyError names a documented parameter the cmdlet lacks
        seen = occurrences(meta, pname)
        required = "true" if seen and all(q["mandatory"] for q in seen) else "false"
        positions = sorted({position(q) for q in seen}, key=lambda x: (x == "named", x))
        pipeline = sorted({pipeline_input(q) for q in seen}, key=lambda x: x == "False")
        aliases = ", ".join(info["aliases"]) or "none"
        value = "" if info["switch"] else f"""
        <command:parameterValue required="true" variableLength="false">{escape(info["type"])}</command:parameterValue>"""
        parameters.append(f"""      <command:parameter required="{required}" variableLength="true" globbing="{str(info["wildcards"]).lower()}" pipelineInput="{pipeline[0] if pipeline else 'False'}" position="{positions[0] if positions else 'named'}" aliases="{escape(aliases)}">
        <maml:name>{escape(pname)}</maml:name>
        <maml:description>
{paras(body, 10)}
        </maml:description>{value}
        <dev:type>
          <maml:name>{escape(info["fullType"])}</maml:name>
        </dev:type>
        <dev:defaultValue>{"False" if info["switch"] else "None"}</dev:defaultValue>
      </command:parameter>""")
    nl = "\n"
    return f"""  <command:command>
    <command:details>
      <command:name>{name}</command:name>
      <command:verb>{verb}</command:verb>
      <command:noun>{noun}</command:noun>
      <maml:description>
{paras(s["SYNOPSIS"], 8)}
      </maml:description>
    </command:details>
    <maml:description>
{paras(s["DESCRIPTION"], 6)}
    </maml:description>
    <command:syntax>
{syntax(meta)}
    </command:syntax>
    <command:parameters>
{nl.join(parameters)}
    </command:parameters>
    <command:inputTypes>
      <command:inputType>
        <dev:type><maml:name>{escape(s["INPUTS"])}</maml:name></dev:type>
      </command:inputType>
    </command:inputTypes>
    <command:returnValues>
      <command:returnValue>
        <dev:type><maml:name>{escape(s["OUTPUTS"])}</maml:name></dev:type>
      </command:returnValue>
    </command:returnValues>
    <maml:alertSet>
      <maml:alert>
{paras(s["NOTES"], 8)}
      </maml:alert>
    </maml:alertSet>
    <command:examples>
{nl.join(examples)}
    </command:examples>
  </command:command>"""


def build():
    commands = [command(p) for p in sorted(HERE.glob("*-*.md"))]
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            "<!-- Generated by docs/help/build-maml.py from docs/help/*.md; edit those. -->\n"
            '<helpItems schema="maml" xmlns="http://msh" xmlns:maml="http://schemas.microsoft.com/maml/2004/10" '
            'xmlns:command="http://schemas.microsoft.com/maml/dev/command/2004/10" '
            'xmlns:dev="http://schemas.microsoft.com/maml/dev/2004/10">\n'
            + "\n".join(commands) + "\n</helpItems>\n")


if __name__ == "__main__":
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "module" / "en-US" / "MailOps.PowerShell.dll-Help.xml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build(), encoding="utf-8", newline="\n")

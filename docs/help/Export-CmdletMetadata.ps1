#Requires -Version 7.4
<#
.SYNOPSIS
    Writes docs/help/cmdlets.json: the parameter sets and parameter attributes of the compiled
    cmdlets, which build-maml.py turns into the SYNTAX and parameter details of the help.
.DESCRIPTION
    Run it after changing a cmdlet's parameters (after a build), then build-maml.py. A Pester test
    fails when the committed file differs from what the built module says.
.EXAMPLE
    dotnet build; pwsh docs/help/Export-CmdletMetadata.ps1; python3 docs/help/build-maml.py
#>
param([string] $OutputPath = (Join-Path $PSScriptRoot 'cmdlets.json'))
$ErrorActionPreference = 'Stop'
Import-Module (Join-Path $PSScriptRoot '..' '..' 'MailOps.psd1') -Force

function Get-MailOpsCmdletMetadata {
    $common = [System.Management.Automation.PSCmdlet]::CommonParameters + [System.Management.Automation.PSCmdlet]::OptionalCommonParameters
    foreach ($cmd in Get-Command -Module MailOps -CommandType Cmdlet | Sort-Object Name) {
        $parameters = [ordered]@{}
        foreach ($p in $cmd.Parameters.Values | Where-Object { $_.Name -notin $common } | Sort-Object Name) {
            # Nullable<TimeSpan> reads as TimeSpan in help, as in PowerShell's own cmdlets.
            $type = [Nullable]::GetUnderlyingType($p.ParameterType) ?? $p.ParameterType
            $parameters[$p.Name] = [ordered]@{
                type      = $type.Name
                fullType  = $type.FullName
                switch    = $p.SwitchParameter
                aliases   = @($p.Aliases | Sort-Object)
                wildcards = [bool]($p.Attributes | Where-Object { $_ -is [System.Management.Automation.SupportsWildcardsAttribute] })
            }
        }
        $sets = foreach ($set in $cmd.ParameterSets | Sort-Object { -not $_.IsDefault }, Name) {
            [ordered]@{
                name       = $set.Name
                isDefault  = $set.IsDefault
                parameters = @(foreach ($p in $set.Parameters | Where-Object { $_.Name -notin $common -or $_.Name -in 'WhatIf', 'Confirm' } |
                        Sort-Object { if ($_.Position -ge 0) { $_.Position } else { 1000 } }, { -not $_.IsMandatory }) {
                    [ordered]@{
                        name          = $p.Name
                        mandatory     = $p.IsMandatory
                        position      = $p.Position
                        byValue       = $p.ValueFromPipeline
                        byPropertyName = $p.ValueFromPipelineByPropertyName
                    }
                })
            }
        }
        [ordered]@{ name = $cmd.Name; parameterSets = @($sets); parameters = $parameters }
    }
}

$json = ConvertTo-Json @(Get-MailOpsCmdletMetadata) -Depth 8
if ($OutputPath -eq '-') { $json } else { Set-Content -Path $OutputPath -Value $json -Encoding utf8NoBOM }

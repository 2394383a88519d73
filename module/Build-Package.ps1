#Requires -Version 7.4
<#
.SYNOPSIS
    Packs the built module as PowerShell publishes it: a .nupkg made by Publish-PSResource.
.DESCRIPTION
    Stages what the module needs (the manifest, module/bin with its dependencies folder, the
    format file, the help) in a folder named MailOps and publishes it, with PSResourceGet, into a
    local folder repository at -OutputPath. Install it with Register-PSResourceRepository -Uri
    <OutputPath> and Install-PSResource MailOps. Build first (dotnet build -c Release): the
    package holds what is in module/bin. The version is the manifest's ModuleVersion, which
    must equal <Version> in Directory.Build.props (the assemblies' version): one number.
.EXAMPLE
    dotnet build -c Release; pwsh module/Build-Package.ps1 -OutputPath ./artifacts
#>
param(
    [Parameter(Mandatory)] [string] $OutputPath
)
$ErrorActionPreference = 'Stop'
$root = Split-Path $PSScriptRoot -Parent
$manifest = Import-PowerShellDataFile (Join-Path $root 'MailOps.psd1')
$props = [xml](Get-Content (Join-Path $root 'Directory.Build.props') -Raw)
$assemblyVersion = $props.Project.PropertyGroup.Version | Where-Object { $_ } | Select-Object -First 1
if ($manifest.ModuleVersion -ne $assemblyVersion) {
    throw "MailOps.psd1 says ModuleVersion $($manifest.ModuleVersion) and Directory.Build.props says ${assemblyVersion}: make them one."
}
$bin = Join-Path $root 'module' 'bin'
if (-not (Test-Path (Join-Path $bin 'MailOps.PowerShell.dll')) -or -not (Test-Path (Join-Path $bin 'dependencies' 'MailOps.Core.dll'))) {
    throw "module/bin is not built: run 'dotnet build -c Release' first."
}

$stage = Join-Path ([IO.Path]::GetTempPath()) ('mailops-package-' + [guid]::NewGuid().ToString('N'))
$module = Join-Path $stage 'MailOps'
try {
    New-Item -ItemType Directory -Path (Join-Path $module 'module' 'en-US'), (Join-Path $module 'en-US') -Force | Out-Null
    Copy-Item (Join-Path $root 'MailOps.psd1'), (Join-Path $root 'LICENSE') $module
    Copy-Item (Join-Path $root 'module' 'MailOps.format.ps1xml') (Join-Path $module 'module')
    Copy-Item $bin (Join-Path $module 'module') -Recurse
    Get-ChildItem (Join-Path $module 'module' 'bin') -Recurse -Filter *.pdb | Remove-Item
    Copy-Item (Join-Path $root 'module' 'en-US' '*') (Join-Path $module 'module' 'en-US')
    # about_ topics are looked up in the culture folder beside the manifest.
    Copy-Item (Join-Path $root 'module' 'en-US' 'about_MailOps.help.txt') (Join-Path $module 'en-US')

    New-Item -ItemType Directory -Path $OutputPath -Force | Out-Null
    $repository = 'MailOpsBuild' + [guid]::NewGuid().ToString('N').Substring(0, 8)
    Register-PSResourceRepository -Name $repository -Uri (Resolve-Path $OutputPath).Path -Trusted
    try {
        Publish-PSResource -Path $module -Repository $repository
    }
    finally {
        Unregister-PSResourceRepository -Name $repository
    }
    Get-Item (Join-Path $OutputPath "MailOps.$($manifest.ModuleVersion).nupkg")
}
finally {
    Remove-Item $stage -Recurse -Force -ErrorAction SilentlyContinue
}

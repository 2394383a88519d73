#Requires -Version 7.4
BeforeAll {
    $script:RepoRoot = (Resolve-Path (Join-Path $PSScriptRoot '..' '..')).Path
}

Describe 'Installing MailOps by name' {
    It 'has one version: the manifest''s, equal to the assemblies''' {
        $manifest = Test-ModuleManifest (Join-Path $RepoRoot 'MailOps.psd1')
        $props = [xml](Get-Content (Join-Path $RepoRoot 'Directory.Build.props') -Raw)
        "$($manifest.Version)" | Should -Be ($props.Project.PropertyGroup.Version | Where-Object { $_ } | Select-Object -First 1)
        $manifest.PrivateData.PSData.ProjectUri | Should -BeNullOrEmpty
    }

    It 'packs, installs from a local repository with Install-PSResource, and works in a fresh pwsh' {
        $repo = Join-Path $TestDrive 'repo'
        $package = & (Join-Path $RepoRoot 'module' 'Build-Package.ps1') -OutputPath $repo
        $package.Name | Should -Match '^MailOps\.\d+\.\d+\.\d+\.nupkg$'

        # A user with nothing installed: an empty home, so the CurrentUser module path and the
        # PSResourceGet settings are new, and no path leads back to this repository.
        $home2 = Join-Path $TestDrive 'home'
        New-Item -ItemType Directory $home2 | Out-Null
        $script = {
            $ErrorActionPreference = 'Stop'
            Register-PSResourceRepository -Name local -Uri $env:MAILOPS_TEST_REPO -Trusted
            Install-PSResource MailOps -Repository local -Scope CurrentUser
            Import-Module MailOps
            "base=$((Get-Module MailOps).ModuleBase)"
            $q = Join-Path $HOME 'queue'
            $server = Start-MailServer -QueuePath $q -Listen 127.0.0.1:0 -NoTls
            try {
                Submit-MailMessage -QueuePath $q -From alice@localhost -To postmaster@localhost -Subject 'installed' -Body 'by name' | Out-Null
                $deadline = (Get-Date).AddSeconds(20)
                while ((Get-MailQueue -QueuePath $q) -and (Get-Date) -lt $deadline) { Start-Sleep -Milliseconds 100 }
                "delivered=$(@(Get-ChildItem (Join-Path $server.MaildirRoot 'localhost' 'postmaster' 'new')).Count)"
            }
            finally {
                $server | Stop-MailServer -Force
            }
            "about=$((Get-Help about_MailOps | Out-String) -match 'qmail')"
        }
        $saved = @{ HOME = $env:HOME; PSModulePath = $env:PSModulePath; MAILOPS_TEST_REPO = $env:MAILOPS_TEST_REPO; MAILOPS_QUEUE = $env:MAILOPS_QUEUE }
        try {
            $env:HOME = $home2
            $env:PSModulePath = $null
            $env:MAILOPS_TEST_REPO = $repo
            $env:MAILOPS_QUEUE = $null
            $out = & (Join-Path $PSHOME 'pwsh') -NoProfile -NonInteractive -Command $script 2>&1 | Out-String
        }
        finally {
            foreach ($k in $saved.Keys) { Set-Item "env:$k" $saved[$k] -ErrorAction SilentlyContinue; if ($null -eq $saved[$k]) { Remove-Item "env:$k" -ErrorAction SilentlyContinue } }
        }
        $out | Should -Match ([regex]::Escape("base=$home2"))
        $out | Should -Match 'delivered=1'
        $out | Should -Match 'about=True'
    }
}

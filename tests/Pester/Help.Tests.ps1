#Requires -Version 7.4
BeforeDiscovery {
    $root = (Resolve-Path (Join-Path $PSScriptRoot '..' '..')).Path
    Import-Module (Join-Path $root 'MailOps.psd1') -Force
    $script:cmdlets = @(Get-Command -Module MailOps -CommandType Cmdlet | ForEach-Object { @{ Name = $_.Name } })
}

BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1
    $script:common = [System.Management.Automation.PSCmdlet]::CommonParameters + [System.Management.Automation.PSCmdlet]::OptionalCommonParameters
}

Describe 'Get-Help <Name> -Full' -ForEach $cmdlets {
    BeforeAll {
        $help = Get-Help $Name -Full
        $command = Get-Command $Name
        $text = $help | Out-String -Width 200
    }

    It 'has a SYNTAX line per parameter set' {
        @($help.Syntax.SyntaxItem).Count | Should -Be @($command.ParameterSets).Count
        $text | Should -Match "(?m)^SYNTAX\s*\r?\n\s+$Name "
    }

    It 'describes every parameter with its real attributes' {
        foreach ($p in $command.Parameters.Values | Where-Object { $_.Name -notin $common }) {
            $h = @($help.Parameters.Parameter | Where-Object Name -EQ $p.Name)
            $h | Should -HaveCount 1 -Because "-$($p.Name) needs help"
            $h[0].Description.Text | Should -Not -BeNullOrEmpty -Because "-$($p.Name) needs a description"
            $sets = @($p.ParameterSets.Values)
            $h[0].Required | Should -Be ([string](@($sets | Where-Object IsMandatory).Count -eq $sets.Count)).ToLower()
            $positions = @($sets | Where-Object Position -GE 0 | ForEach-Object Position)
            if ($positions.Count -gt 0) { $h[0].Position | Should -Be "$($positions[0])" } else { $h[0].Position | Should -Be 'named' }
            $byName = [bool]($sets | Where-Object ValueFromPipelineByPropertyName)
            $h[0].PipelineInput | Should -Be $(if ($byName -or ($sets | Where-Object ValueFromPipeline)) { $h[0].PipelineInput } else { 'False' })
            if ($byName) { $h[0].PipelineInput | Should -Match 'ByPropertyName' }
        }
    }

    It 'has numbered examples that run anywhere' {
        $examples = @($help.Examples.Example)
        $examples.Count | Should -BeGreaterThan 0
        for ($i = 0; $i -lt $examples.Count; $i++) {
            $examples[$i].Title | Should -Match "Example $($i + 1):"
            $examples[$i].Code | Should -Not -Match '\$env:(TEMP|TMP|USERPROFILE)\b' -Because 'examples must work on Linux and Windows'
        }
    }
}

Describe 'The help''s facts' {
    It 'come from the compiled cmdlets (docs/help/cmdlets.json is current)' {
        $fresh = & (Join-Path $RepoRoot 'docs' 'help' 'Export-CmdletMetadata.ps1') -OutputPath '-'
        $committed = Get-Content (Join-Path $RepoRoot 'docs' 'help' 'cmdlets.json') -Raw
        ($fresh -join "`n").Trim() | Should -Be ($committed -replace "`r", '').Trim() -Because 'run docs/help/Export-CmdletMetadata.ps1 and build-maml.py after changing a parameter'
    }
}

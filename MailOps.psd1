@{
    RootModule           = 'module/bin/MailOps.PowerShell.dll'
    ModuleVersion        = '0.1.0'
    GUID                 = '5f3c2a8e-7d41-4c0b-9a6e-2b8f1d9c4e73'
    Author               = 'MailOps contributors'
    CompanyName          = 'MailOps'
    Copyright            = '(c) MailOps contributors'
    Description          = 'A mail transfer agent that lives in PowerShell: an SMTP listener, a durable queue and an MX-aware delivery engine as cmdlets.'
    PowerShellVersion    = '7.4'
    CompatiblePSEditions = @('Core')
    CmdletsToExport      = @('Get-MailQueue')
    FunctionsToExport    = @()
    AliasesToExport      = @()
    VariablesToExport    = @()
    FormatsToProcess     = @('module/MailOps.format.ps1xml')
    PrivateData          = @{
        PSData = @{
            Tags = @('mail', 'smtp', 'mta', 'queue', 'sendmail', 'maildir')
        }
    }
}

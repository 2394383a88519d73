@{
    # The cmdlets live in module/bin/MailOps.PowerShell.dll; MailOps.Core and MailKit, MimeKit
    # and DnsClient load from module/bin/dependencies into the module's own AssemblyLoadContext.
    # A nested module, not RootModule: its ModuleBase is then module/bin, where PowerShell finds
    # the cmdlet help (en-US/MailOps.PowerShell.dll-Help.xml) and about_MailOps.
    NestedModules        = @('module/bin/MailOps.PowerShell.dll')
    ModuleVersion        = '0.1.0'
    GUID                 = '5f3c2a8e-7d41-4c0b-9a6e-2b8f1d9c4e73'
    Author               = 'MailOps contributors'
    CompanyName          = 'MailOps'
    Copyright            = '(c) MailOps contributors. MIT licence.'
    Description          = 'A mail transfer agent that lives in PowerShell: an SMTP listener, a durable queue and an MX-aware delivery engine as cmdlets.'
    PowerShellVersion    = '7.4'
    CompatiblePSEditions = @('Core')
    CmdletsToExport      = @(
        'Start-MailServer'
        'Stop-MailServer'
        'Get-MailServer'
        'Update-MailServer'
        'Get-MailboxMessage'
        'Wait-MailboxMessage'
        'Remove-MailboxMessage'
        'Clear-Mailbox'
        'Get-MailQueue'
        'Send-QueuedMail'
        'Submit-MailMessage'
        'New-MailMessage'
        'Trace-MailMessage'
        'Get-MailLog'
        'Suspend-QueuedMail'
        'Resume-QueuedMail'
        'Remove-QueuedMail'
        'Export-QueuedMail'
        'Resolve-MailExchanger'
        'New-MailDkimKey'
        'Get-MailDkimKey'
        'Test-MailDomain'
    )
    FunctionsToExport    = @()
    AliasesToExport      = @()
    VariablesToExport    = @()
    FormatsToProcess     = @('module/MailOps.format.ps1xml')
    PrivateData          = @{
        PSData = @{
            Tags         = @('mail', 'smtp', 'mta', 'queue', 'sendmail', 'maildir', 'qmail', 'PSEdition_Core', 'Linux', 'Windows', 'MacOS')
            ReleaseNotes = 'First release: the queue store, the SMTP listener, the delivery engine and their cmdlets.'
        }
    }
}

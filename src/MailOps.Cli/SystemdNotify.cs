using System.Net.Sockets;
using System.Text;

namespace MailOps.Cli;

/// <summary>
/// sd_notify(3) for <c>Type=notify</c> services: READY=1 once the listener is bound and the queue
/// is served, STOPPING=1 when a graceful stop begins. Nothing when not started by systemd.
/// </summary>
internal static class SystemdNotify
{
    public static void Send(string state)
    {
        string? path = Environment.GetEnvironmentVariable("NOTIFY_SOCKET");
        if (string.IsNullOrEmpty(path) || OperatingSystem.IsWindows()) return;
        if (path[0] == '@') path = "\0" + path[1..]; // an abstract socket
        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
            socket.SendTo(Encoding.UTF8.GetBytes(state), new UnixDomainSocketEndPoint(path));
        }
        catch (SocketException)
        {
            // systemd went away; the service runs on regardless.
        }
    }
}

using System.Net;
using System.Text;
using MailOps.Core.Config;
using MailOps.Core.Smtp;

namespace MailOps.Tests.Smtp;

public sealed class SmtpUnitTests
{
    [Theory]
    [InlineData("127.0.0.1:2525", "127.0.0.1:2525")]
    [InlineData("[::1]:2525", "[::1]:2525")]
    [InlineData("127.0.0.1:0", "127.0.0.1:0")]
    public void Listen_endpoints_parse(string text, string expected) =>
        Assert.Equal(expected, SmtpListener.ParseEndpoint(text).ToString());

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("::1")]
    [InlineData("localhost:25")]
    [InlineData("127.0.0.1:99999")]
    public void Bad_listen_endpoints_are_configuration_errors(string text) =>
        Assert.Throws<ConfigException>(() => SmtpListener.ParseEndpoint(text));

    [Fact]
    public void Password_hashes_verify_and_a_plain_text_password_in_the_configuration_is_refused()
    {
        string hash = PasswordHash.Create("correct horse", iterations: 1000);
        Assert.StartsWith("pbkdf2-sha256$1000$", hash);
        Assert.True(PasswordHash.Verify("correct horse", hash));
        Assert.False(PasswordHash.Verify("correct horsE", hash));
        Assert.NotEqual(hash, PasswordHash.Create("correct horse", iterations: 1000)); // salted

        var config = new MailOpsConfig { Users = [new UserSettings { Name = "u", PasswordHash = "correct horse" }] };
        var error = Assert.Throws<ConfigException>(() => config.Validate());
        Assert.Contains("not a hash", error.Message);
    }

    [Fact]
    public void The_decoder_gives_the_same_body_however_the_input_is_cut()
    {
        byte[] input = Encoding.ASCII.GetBytes("a\r\n..b\r\n..\r\nc.\r\n.\r\nafter");
        string Decode(params byte[][] pieces)
        {
            var output = new MemoryStream();
            var decoder = new BodyDecoder(dotStuffed: true, long.MaxValue, data => output.Write(data));
            foreach (var piece in pieces)
            {
                var status = decoder.Decode(new System.Buffers.ReadOnlySequence<byte>(piece), out long used);
                if (status == DecodeStatus.End) return Encoding.ASCII.GetString(output.ToArray()) + "|" + used;
            }
            return "no end";
        }
        string whole = Decode(input);
        Assert.Equal("a\r\n.b\r\n.\r\nc.\r\n|" + (input.Length - 5), whole);
        for (int k = 1; k < input.Length; k++)
        {
            string cut = Decode(input[..k], input[k..]);
            // "used" counts octets of the last piece; add back the first piece when the end was in the second.
            var parts = cut.Split('|');
            int used = int.Parse(parts[1]) + (k < input.Length - 5 ? k : 0);
            Assert.Equal(whole, parts[0] + "|" + used);
        }
    }
}

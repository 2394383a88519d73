#!/usr/bin/env bash
# A strict receiving MTA on loopback, built from Debian's packages: a private Postfix instance
# whose smtpd asks rspamd (as a milter) about every message. rspamd checks SPF, DKIM and DMARC
# against the DNS server given (dnsmasq in the tests), enforces DMARC policies (p=reject is
# refused at the end of DATA) and adds an Authentication-Results header; Postfix relays what it
# accepts to --relay, where the test reads it. Prints READY when both listen; stops, and cleans
# up its processes, when stdin closes or after --lifetime seconds.
#
#   strict-receiver.sh --dir DIR --listen IP:PORT --dns-port N --relay IP:PORT --domains D[,D]
set -euo pipefail
lifetime=120
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2;; --listen) listen=$2; shift 2;; --dns-port) dns_port=$2; shift 2;;
    --relay) relay=$2; shift 2;; --domains) domains=$2; shift 2;; --lifetime) lifetime=$2; shift 2;;
    *) echo "unknown option $1" >&2; exit 64;;
  esac
done
: "${dir:?--dir}" "${listen:?--listen}" "${dns_port:?--dns-port}" "${relay:?--relay}" "${domains:?--domains}"

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
milter_port=$(free_port)

# --- rspamd: the stock configuration, with our DNS, a milter on loopback and DMARC enforced ---
rs=$dir/rspamd; mkdir -p "$rs/local.d" "$rs/db" "$rs/run" "$rs/log"
cat > "$rs/rspamd.conf" <<CF
.include "\$CONFDIR/common.conf"
options {
  pidfile = "\$RUNDIR/rspamd.pid";
  .include "\$CONFDIR/options.inc"
  .include(priority=10) "\$LOCAL_CONFDIR/options.override"
}
logging { type = "file"; filename = "\$LOGDIR/rspamd.log"; level = "info"; }
worker "rspamd_proxy" {
  bind_socket = "127.0.0.1:$milter_port";
  milter = yes;
  timeout = 60s;
  count = 1;
  upstream "local" { default = yes; self_scan = yes; }
  reject_message = "rejected by the strict receiver's policy";
}
CF
cat > "$rs/options.override" <<CF
dns { nameserver = ["127.0.0.1:$dns_port"]; timeout = 1s; retransmits = 1; }
local_addrs = [];
# Loopback is where every test client comes from: check it like the Internet.
check_local = true;
check_authed = true;
CF
cat > "$rs/local.d/dmarc.conf" <<CF
check_local = true;
check_authed = true;
actions { reject = "reject"; quarantine = "add_header"; }
CF
cat > "$rs/local.d/spf.conf" <<CF
check_local = true;
check_authed = true;
CF
cat > "$rs/local.d/dkim.conf" <<CF
check_local = true;
check_authed = true;
CF
cat > "$rs/local.d/milter_headers.conf" <<CF
use = ["authentication-results"];
skip_local = false;
skip_authenticated = false;
authenticated_headers = ["authentication-results"];
CF
chown -R _rspamd: "$rs/db" "$rs/run" "$rs/log" 2>/dev/null || true

# --- Postfix: a private instance; smtpd on --listen only, everything accepted goes to --relay ---
pf=$dir/postfix; conf=$pf/etc; queue=$pf/spool; data=$pf/data
mkdir -p "$conf" "$queue" "$data"
chmod 755 "$dir" "$pf" "$conf" "$queue"; chown postfix: "$data"; chmod 700 "$data"
cat > "$conf/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $queue
data_directory = $data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-strict
maillog_file = $pf/maillog
maillog_file_prefixes = $dir
myhostname = strict.receiver.test
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks =
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
smtp_host_lookup = native
relayhost = [${relay%:*}]:${relay##*:}
relay_domains = ${domains//,/ }
smtpd_relay_restrictions = reject_unauth_destination
smtpd_milters = inet:127.0.0.1:$milter_port
non_smtpd_milters =
milter_default_action = tempfail
milter_protocol = 6
smtpd_tls_security_level = none
smtp_tls_security_level = none
CF
cat > "$conf/master.cf" <<CF
$listen inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
CF

rspamd_pid=
cleanup() {
  postfix -c "$conf" stop >/dev/null 2>&1 || true
  [ -n "$rspamd_pid" ] && kill "$rspamd_pid" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

rspamd -f -u _rspamd -g _rspamd -c "$rs/rspamd.conf" --var=LOCAL_CONFDIR="$rs" --var=DBDIR="$rs/db" --var=RUNDIR="$rs/run" --var=LOGDIR="$rs/log" >"$rs/log/stdout" 2>&1 &
rspamd_pid=$!
postfix -c "$conf" check >/dev/null 2>&1 || { cat "$pf/maillog" >&2 2>/dev/null; echo "postfix check failed" >&2; exit 1; }
postfix -c "$conf" start >/dev/null 2>&1 || { cat "$pf/maillog" >&2 2>/dev/null; echo "postfix start failed" >&2; exit 1; }

ready() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }
for _ in $(seq 900); do ready "127.0.0.1:$milter_port" && ready "$listen" && break; sleep 0.1; done
ready "127.0.0.1:$milter_port" || { echo "rspamd did not start:" >&2; tail -20 "$rs/log/rspamd.log" "$rs/log/stdout" >&2 2>/dev/null; exit 1; }
ready "$listen" || { echo "postfix did not listen on $listen" >&2; exit 1; }
echo READY
timeout "$lifetime" cat >/dev/null || true

#!/usr/bin/env bash
# Every encore subcommand answers --help and -h with its usage line and
# options on stdout, exit 0; an unknown option exits 2 with the usage line
# on stderr (issue 16, item 7). The option lists asserted here are the
# ones each command's parser accepts (consumer/main.c, consumer/demo.c).
set -uo pipefail
encore="$1"
fail=0
check() { # cmd option...
        local cmd=$1
        shift
        for h in --help -h; do
                out=$("$encore" "$cmd" "$h" 2>/tmp/enc_help_err.$$)
                rc=$?
                if [[ $rc != 0 ]]; then
                        echo "FAIL: encore $cmd $h exited $rc, want 0"
                        fail=1
                fi
                if [[ $(head -1 <<<"$out") != "usage: encore $cmd"* ]]; then
                        echo "FAIL: encore $cmd $h: first line is '$(head -1 <<<"$out")'"
                        fail=1
                fi
                for opt in "$@" -h --help; do
                        if ! grep -q -- "$opt" <<<"$out"; then
                                echo "FAIL: encore $cmd $h does not list $opt"
                                fail=1
                        fi
                done
        done
        err=$("$encore" "$cmd" --no-such-option 2>&1 >/dev/null)
        rc=$?
        if [[ $rc != 2 ]]; then
                echo "FAIL: encore $cmd --no-such-option exited $rc, want 2"
                fail=1
        fi
        if ! grep -q -- "--no-such-option" <<<"$err" ||
                ! grep -q "usage: encore $cmd" <<<"$err"; then
                echo "FAIL: encore $cmd --no-such-option: stderr lacks the option or the usage: $err"
                fail=1
        fi
}
check run --config --set --embedded-broker --exit-idle-ms --exit-idle-after-signal
check demo --events --users --days
check replay --from --to --output-topic --state-dir --bootstrap --progress --config --set
check reset --to --dry-run --clear-local --force --bootstrap --config --set
check tail --bootstrap --topic --max
check readout --bootstrap --topic --signal --version --final-only --control --from --to --json
check config --markdown --config --set
check version
# --help after other options still wins, and help CMD is CMD --help.
[[ $("$encore" run --set log.level=debug --help | head -1) == "usage: encore run"* ]] ||
        { echo "FAIL: encore run --set ... --help"; fail=1; }
[[ $("$encore" help tail | head -1) == "usage: encore tail"* ]] ||
        { echo "FAIL: encore help tail"; fail=1; }
rm -f /tmp/enc_help_err.$$
[[ $fail == 0 ]] && echo "every subcommand answers --help and -h; unknown options exit 2"
exit $fail

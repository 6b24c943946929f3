#!/usr/bin/env bash
# Debian's chromium, for the console's browser tests (Playwright launches it; Playwright's
# own browser downloads come from a CDN this machine cannot reach).
#
#   chromium.sh   install it once (idempotent) and print the path of its binary on stdout
# shellcheck source=dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ -x /usr/bin/chromium ] || apt_install chromium >&2
[ -x /usr/bin/chromium ] || die "apt installed chromium but /usr/bin/chromium is missing"
echo /usr/bin/chromium

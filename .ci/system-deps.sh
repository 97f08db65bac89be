#!/usr/bin/env bash
# Debian packages the test suite needs: chromium (the headless browser check of the book),
# bubblewrap (the grading sandbox) and postgresql (the gradebook test on a real server).
# Installs what is missing when run as root with apt-get; otherwise says what to install.
set -euo pipefail

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "missing system packages: ${need[*]} (sudo apt-get install ${need[*]});" \
       "the tests that need them are skipped locally and fail under CI=true" >&2
fi

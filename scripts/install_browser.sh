#!/usr/bin/env bash
# Debian's chromium + chromium-driver for the browser tests (tests/test_web.py), installed with
# apt-get when missing. Test tools never download browsers. Without apt-get or root rights this
# only warns: the browser tests then skip locally (and fail under CI=true).
set -uo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
sudo=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo="sudo -n"
if command -v apt-get >/dev/null && { [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; }; then
  echo "installing chromium and chromium-driver with apt-get" >&2
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
  exit $?
fi
echo "warning: chromium/chromedriver missing and apt-get unavailable: browser tests will skip" >&2
exit 0

#!/usr/bin/env bash
# Print the path of a working Python X.Y interpreter (argument: 3.10 or 3.11).
# Order: $PYTHON310 / $PYTHON311 override, pythonX.Y on PATH, pyenv's versions, /usr/bin.
set -euo pipefail
want="${1:?usage: find_python.sh 3.10|3.11}"
var="PYTHON${want//./}"
works() { [ -n "${1:-}" ] && "$1" -c "import sys; assert sys.version_info[:2] == tuple(map(int, '$want'.split('.')))" >/dev/null 2>&1; }
cands=()
[ -n "${!var:-}" ] && cands+=("${!var}")
command -v "python$want" >/dev/null 2>&1 && cands+=("$(command -v "python$want")")
if command -v pyenv >/dev/null 2>&1; then
  root=$(pyenv root)
  for p in $(ls -d "$root"/versions/"$want".*/bin/python 2>/dev/null | sort -V -r); do cands+=("$p"); done
fi
for p in "$HOME"/.pyenv/versions/"$want".*/bin/python /usr/bin/python"$want" /usr/local/bin/python"$want"; do [ -e "$p" ] && cands+=("$p"); done
for p in "${cands[@]}"; do
  if works "$p"; then echo "$p"; exit 0; fi
done
cat >&2 <<MSG
ERROR: Python $want was not found.
Concierge needs Python 3.10 for the Rasa server (rasa 3.6 supports Python < 3.11)
and Python 3.11 for the action server.
Install it, for example:  pyenv install $want   (or: apt-get install python$want python$want-venv)
or point to an interpreter:  export $var=/path/to/python$want
MSG
exit 1

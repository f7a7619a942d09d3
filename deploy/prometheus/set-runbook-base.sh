#!/bin/sh
# Prints the alert rules with every runbook_url under another base, for operators who host
# docs/alerts.md (the runbooks) somewhere else: a wiki, an internal Git server, a docs site.
#
#   deploy/prometheus/set-runbook-base.sh https://wiki.example.com/kraken/alerts.md > kraken.rules.yml
#   deploy/prometheus/set-runbook-base.sh --kubernetes https://wiki.example.com/kraken/alerts.md > prometheusrule.yaml
#
# Each runbook_url becomes BASE#<alert name in lower case>. The shipped base is the one place it is
# named, the "# Runbook base:" line of kraken.rules.yml, and the output names the new one there.
# --kubernetes prints deploy/kubernetes/prometheusrule.yaml instead (the same rules under spec).
set -eu
here=$(dirname "$0")
rules="$here/kraken.rules.yml"
input=$rules
if [ "${1:-}" = "--kubernetes" ]; then
  input="$here/../kubernetes/prometheusrule.yaml"
  shift
fi
if [ $# -ne 1 ]; then
  echo "usage: $0 [--kubernetes] BASE_URL   (e.g. https://wiki.example.com/kraken/alerts.md)" >&2
  exit 2
fi
new=$1
# The URL goes into double-quoted YAML strings and takes the anchor after it.
case $new in
  '' | *[[:space:]]* | *'"'* | *'\'* | *'#'*)
    echo "$0: $new: give the URL of the page without an anchor, quotes, backslashes or spaces" >&2
    exit 2
    ;;
esac
old=$(sed -n 's/^# Runbook base: //p' "$rules")
if [ -z "$old" ]; then
  echo "$0: $rules has no \"# Runbook base:\" line" >&2
  exit 1
fi
OLD=$old NEW=$new awk '
  {
    line = $0
    out = ""
    while ((i = index(line, ENVIRON["OLD"])) > 0) {
      out = out substr(line, 1, i - 1) ENVIRON["NEW"]
      line = substr(line, i + length(ENVIRON["OLD"]))
    }
    print out line
  }
' "$input"

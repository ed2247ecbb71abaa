#!/usr/bin/env bash
# The static gates, in seconds: ruff (lint and format), mypy, the layering
# contracts (import-linter), buf lint and buf breaking, and generated code that
# is out of date. Installs the dev tools first, as scripts/test.sh does, and
# Debian's golang-grpc-gateway (protoc-gen-swagger, which writes the OpenAPI
# document) when it is missing and this runs as root with apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v protoc-gen-swagger >/dev/null; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-grpc-gateway
  else
    echo "scripts/check.sh: the OpenAPI check needs protoc-gen-swagger: install Debian's golang-grpc-gateway package (sudo apt-get install golang-grpc-gateway) and run again." >&2
    exit 1
  fi
fi
bash scripts/dev-install.sh

echo "== ruff check, ruff format --check"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== import-linter contracts"
.venv/bin/lint-imports
echo "== buf lint"
.venv/bin/buf lint
echo "== buf breaking against the previous commit"
if git rev-parse --verify --quiet HEAD~1 >/dev/null && git cat-file -e HEAD~1:buf.yaml 2>/dev/null; then
  .venv/bin/buf breaking --against '.git#ref=HEAD~1'
else
  echo "no previous commit with protos; nothing to compare"
fi
echo "== generated code is up to date"
.venv/bin/python scripts/codegen.py --check

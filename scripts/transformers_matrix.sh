#!/usr/bin/env bash
# The runtime's tests on every transformers release in the supported range (or the named ones),
# each in a small overlay environment over .venv; a Markdown table of the results.
#
#   scripts/transformers_matrix.sh [VERSION ...]
#
# The same as scripts/dependency_matrix.sh transformers (BASE and TESTS work the same way).
exec "$(dirname "$0")/dependency_matrix.sh" transformers "$@"

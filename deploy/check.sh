#!/usr/bin/env bash
# deploy/check.sh: the CI checks of deploy/, the Dockerfile's neighbours and the config
# they ship. Run from anywhere inside the clone: bash deploy/check.sh
#
#   1. yamllint on deploy/
#   2. kubernetes-validate (strict: unknown fields are errors) on the core manifests, for
#      the oldest Kubernetes the manifests support (1.30: the preStop sleep action) and
#      the newest the validator knows, and on every object as patched per cluster by the
#      Clusternet Localizations and Karmada OverridePolicies
#   3. cross-checks (deploy/check_deploy.py): Clusternet and Karmada objects against
#      their CRD schemas in ../shared/crds, feeds and selectors against the kustomization,
#      patches apply, cluster names and DNS addresses agree with the config's zone glue,
#      Deployment/Services/PDB/NetworkPolicy agree with the config (source kubeconfig
#      mounted from a Secret), the discovery RBAC grants list/watch on exactly what
#      src/discovery/sources.rs watches, the quorum RBAC is a namespaced Role granting
#      what src/quorum/hub.rs does with the view ConfigMaps, PrometheusRule equals the rules file, the
#      dashboard parses and queries only metrics of src/metrics/
#   4. `gslb check-config` on the ConfigMap's TOML, on each of its commented [[source]]
#      variants (Karmada) put in place of the active source, and with its commented
#      [quorum] (views through the hub) turned on (token, state and source
#      kubeconfig paths rewritten to a temporary token of 32 characters, a temporary
#      folder and a dummy kubeconfig: check-config needs them to exist)
#   5. promtool: check rules, test rules (unit tests), check config
#   6. if kubectl is installed: `kubectl kustomize deploy/kubernetes` renders and the
#      result validates
#
# Needs: python3 (with venv and pip; the Python tools are pip-installed into
# target/deploy-venv from deploy/requirements-check.txt), cargo, promtool, git. CRD
# schemas: $GSLB_SHARED/crds, default <clone>/../shared/crds.
set -euo pipefail

repo="$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
cd "$repo"
shared="${GSLB_SHARED:-$repo/../shared}"
crds="$shared/crds"
out="$repo/target/deploy-check"
venv="$repo/target/deploy-venv"

for tool in python3 cargo promtool; do
  command -v "$tool" >/dev/null || { echo "deploy/check.sh: $tool is needed" >&2; exit 1; }
done
[ -d "$crds" ] || { echo "deploy/check.sh: no CRD schemas at $crds (set GSLB_SHARED)" >&2; exit 1; }

echo "== deploy: Python tools in ${venv#"$repo"/}"
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! cmp -s deploy/requirements-check.txt "$stamp"; then
  "$venv/bin/python" -m pip install --disable-pip-version-check --quiet -r deploy/requirements-check.txt
  cp deploy/requirements-check.txt "$stamp"
fi
rm -rf "$out"
mkdir -p "$out"

echo "== deploy: yamllint"
"$venv/bin/yamllint" --strict -c deploy/.yamllint.yaml deploy/
echo "  ok   yamllint deploy/"

# The core manifests: every file of deploy/kubernetes but the kustomization, and the
# hub-side RBAC of the two engines.
core=()
for f in deploy/kubernetes/*.yaml deploy/clusternet/hub-rbac.yaml deploy/karmada/hub-rbac.yaml \
    deploy/clusternet/hub-quorum-rbac.yaml deploy/karmada/hub-quorum-rbac.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] || core+=("$f")
done

# kubernetes-validate only warns about kinds it has no schema for: treat that as an error.
validate() {
  local version="$1"; shift
  local log="$out/validate.log"
  if ! "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "$@" >"$log" 2>&1 \
      || grep -q . "$log"; then
    cat "$log" >&2
    echo "deploy/check.sh: kubernetes-validate $version failed" >&2
    return 1
  fi
}

echo "== deploy: cross-checks, CRD schemas, patches"
"$venv/bin/python" deploy/check_deploy.py "$repo" "$crds" "$out"

echo "== deploy: kubernetes-validate"
for version in 1.30.0 1.37.0; do
  validate "$version" "${core[@]}"
  echo "  ok   ${#core[@]} core manifest files against Kubernetes $version"
done
patched=("$out"/patched/*.yaml)
validate 1.37.0 "${patched[@]}"
echo "  ok   ${#patched[@]} objects as patched per cluster (Localizations, OverridePolicies)"

echo "== deploy: gslb check-config on the ConfigMap's TOML and its [[source]] variants"
for config in "$out/gslb.toml" "$out"/gslb-variant-*.toml; do
  cargo run --quiet --locked -- check-config "$config"
done

echo "== deploy: promtool"
(cd deploy/prometheus && promtool check rules gslb-rules.yaml && promtool test rules gslb-rules.test.yaml)
if ! promtool check config deploy/prometheus/prometheus.yml >"$out/promtool-config.log" 2>&1; then
  if grep -q "kubernetes_sd_configs not found" "$out/promtool-config.log"; then
    # Debian's promtool is built without Kubernetes service discovery: check the same
    # config with static targets in its place.
    echo "  note promtool has no Kubernetes service discovery: checking prometheus.yml with static targets"
    promtool check config "$out/prometheus-static.yml"
  else
    cat "$out/promtool-config.log" >&2
    exit 1
  fi
else
  cat "$out/promtool-config.log"
fi

if command -v kubectl >/dev/null; then
  echo "== deploy: kubectl kustomize"
  kubectl kustomize deploy/kubernetes >"$out/rendered.yaml"
  validate 1.37.0 "$out/rendered.yaml"
  grep -q "image: registry.example.com/gslb:0.1.0" "$out/rendered.yaml" \
    || { echo "deploy/check.sh: kustomize did not set the image" >&2; exit 1; }
  echo "  ok   deploy/kubernetes renders and validates"
else
  echo "== deploy: kubectl not installed, kustomize rendering not checked"
fi

echo "deploy/check.sh: all checks passed"

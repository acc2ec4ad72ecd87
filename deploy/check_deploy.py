#!/usr/bin/env python3
"""Consistency checks of deploy/ that no single tool does; run by deploy/check.sh.

Usage: check_deploy.py REPO CRDS OUT

- Clusternet and Karmada objects validate against the CRD schemas in CRDS (unknown
  fields are errors, as with `kubectl apply --validate=strict`);
- the Subscription's feeds and the Karmada policies' selectors are exactly the objects of
  deploy/kubernetes/kustomization.yaml; Localization and OverridePolicy patches apply to
  them, and the patched objects are written to OUT/patched/ for kubernetes-validate;
- the cluster names agree everywhere (config, Localizations, OverridePolicies), and the
  DNS address pinned per cluster is the glue of one of the zone's name servers;
- the Deployment, Services, PodDisruptionBudget and NetworkPolicy agree with each other
  and with the config in the ConfigMap (ports, mounts, token, state and source kubeconfig
  paths, probes; a source without a kubeconfig needs the service account token);
- the discovery RBAC (clusternet/hub-rbac.yaml, karmada/hub-rbac.yaml,
  kubernetes/rbac.yaml) grants list and watch on exactly the resources that
  src/discovery/sources.rs watches for that source kind;
- the quorum RBAC (clusternet/hub-quorum-rbac.yaml, karmada/hub-quorum-rbac.yaml) is a
  Role and RoleBinding in the views' namespace only (the config's [quorum] namespace,
  else gslb's default from src/config/validate.rs), granting exactly what
  src/quorum/hub.rs does with ConfigMaps (create and patch: server-side apply; list and
  watch), to the ServiceAccount of the discovery RBAC;
- the ServiceMonitor selects the admin Service, the PrometheusRule equals the rules file,
  every alert has a unit test, and every gslb_* metric that the alerts and the dashboard
  query exists in src/metrics/;
- the ConfigMap's TOML is written to OUT/gslb.toml, with the token, state and source
  kubeconfig paths pointed at OUT, for `gslb check-config`; so is each commented
  [[source]] variant (the Karmada one is required), as OUT/gslb-variant-KIND.toml with
  that source in place of the active one, and the commented [quorum] (required) turned
  on, as OUT/gslb-variant-quorum.toml.
"""

import copy
import ipaddress
import json
import os
import re
import sys
import tomllib

import jsonpatch
import jsonschema
import yaml

REPO, CRDS, OUT = (os.path.abspath(a) for a in sys.argv[1:4])
DEPLOY = os.path.join(REPO, "deploy")
K8S = os.path.join(DEPLOY, "kubernetes")

# Files of deploy/kubernetes/ that are deliberately not in kustomization.yaml.
# rbac.yaml: member-cluster read access, for [[source]] kind "kubeconfig" only.
OPTIONAL = {"drill-rbac.yaml", "rbac.yaml"}
# Alerts that issue 5 asks for.
REQUIRED_ALERTS = {
    "GslbClusterDown",
    "GslbAppFailOpen",
    "GslbProbesFailing",
    "GslbDiscoveryStale",
    "GslbOverrideActiveTooLong",
}
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

errors = []


def fail(msg):
    errors.append(msg)
    print(f"  FAIL {msg}")


def ok(msg):
    print(f"  ok   {msg}")


def rel(path):
    return os.path.relpath(path, REPO)


def load_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def key(obj):
    """(apiVersion, kind, namespace or None, name) of an object or a reference."""
    meta = obj.get("metadata", obj)
    return (obj.get("apiVersion"), obj.get("kind"), meta.get("namespace"), meta.get("name"))


def short(e):
    """A patch error without the whole document it quotes."""
    return str(e).split(" in {")[0]


def show(k):
    api, kind, ns, name = k
    return f"{kind} {ns + '/' if ns else ''}{name} ({api})"


# --- the base objects -----------------------------------------------------------------

def base_objects():
    kust = load_docs(os.path.join(K8S, "kustomization.yaml"))[0]
    listed = set(kust.get("resources", []))
    present = {f for f in os.listdir(K8S) if f.endswith((".yaml", ".yml"))} - {"kustomization.yaml"}
    if listed - present:
        fail(f"kustomization.yaml lists missing files: {sorted(listed - present)}")
    if present - listed - OPTIONAL:
        fail(f"deploy/kubernetes files in neither kustomization.yaml nor the optional list: "
             f"{sorted(present - listed - OPTIONAL)}")
    objects = {}
    for f in sorted(listed & present):
        for doc in load_docs(os.path.join(K8S, f)):
            k = key(doc)
            if k in objects:
                fail(f"{show(k)} is defined twice")
            objects[k] = doc
    ok(f"kustomization.yaml: {len(listed)} files, {len(objects)} objects")
    return objects


def one(objects, kind, name):
    found = [o for k, o in objects.items() if k[1] == kind and k[3] == name]
    if len(found) != 1:
        fail(f"expected one {kind} named {name} in deploy/kubernetes, found {len(found)}")
        return {}
    return found[0]


def one_of_kind(objects, kind):
    found = [o for k, o in objects.items() if k[1] == kind]
    if len(found) != 1:
        fail(f"expected one {kind} in deploy/kubernetes, found {len(found)}")
        return {}
    return found[0]


# --- CRD schemas ----------------------------------------------------------------------

def strict(schema):
    """Unknown fields become errors where the schema lists its properties."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def load_crds():
    crds = {}
    for root, _, files in os.walk(CRDS):
        for f in sorted(files):
            if not f.endswith(".yaml"):
                continue
            for doc in load_docs(os.path.join(root, f)):
                if doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc["spec"]
                for v in spec["versions"]:
                    if not v.get("served", True):
                        continue
                    api = f"{spec['group']}/{v['name']}"
                    crds[(api, spec["names"]["kind"])] = (
                        strict(v["schema"]["openAPIV3Schema"]), spec["scope"], f)
    return crds


def validate_cr(obj, crds, where):
    k = key(obj)
    found = crds.get((obj["apiVersion"], obj["kind"]))
    if not found:
        fail(f"{where}: no CRD schema for {obj['kind']} {obj['apiVersion']} in {CRDS}")
        return
    schema, scope, crd_file = found
    meta = obj.get("metadata", {})
    if not DNS1123.match(meta.get("name", "")):
        fail(f"{where}: {show(k)}: metadata.name is not a DNS-1123 name")
    if scope == "Namespaced" and not meta.get("namespace"):
        fail(f"{where}: {show(k)} is namespaced and needs metadata.namespace")
    if scope == "Cluster" and meta.get("namespace"):
        fail(f"{where}: {show(k)} is cluster-scoped and must not have a namespace")
    problems = sorted(jsonschema.Draft7Validator(schema).iter_errors(obj), key=lambda e: list(e.path))
    for e in problems:
        path = "/".join(str(p) for p in e.path) or "(root)"
        fail(f"{where}: {show(k)}: {path}: {e.message}")
    if not problems:
        ok(f"{where}: {show(k)} matches {crd_file}")


# --- patches --------------------------------------------------------------------------

def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def write_patched(name, obj):
    d = os.path.join(OUT, "patched")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name + ".yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(obj, f, sort_keys=False)


def lb_ip(service):
    return service.get("spec", {}).get("loadBalancerIP")


def member_label(deploy):
    return (deploy.get("metadata", {}).get("labels", {}).get("member-cluster"),
            deploy.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {}).get("member-cluster"))


# --- config ---------------------------------------------------------------------------

def config_toml(objects):
    cm = one(objects, "ConfigMap", "gslb-config")
    text = cm.get("data", {}).get("gslb.toml")
    if text is None:
        fail("ConfigMap gslb-config has no gslb.toml key")
        return None, None
    try:
        cfg = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        fail(f"ConfigMap gslb-config: gslb.toml is not TOML: {e}")
        return None, None
    return text, cfg


SOURCE_KUBECONFIG = re.compile(r'^(\s*kubeconfig\s*=\s*)"([^"]*)"', re.M)
DUMMY_KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: hub
  cluster:
    server: http://127.0.0.1:1
contexts:
- name: hub
  context:
    cluster: hub
    user: gslb
current-context: hub
users:
- name: gslb
  user: {}
"""


def source_blocks(text):
    """(start, end) line ranges of the active [[source]] tables, and the commented ones."""
    lines = text.split("\n")
    active, commented = [], []
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped in ("[[source]]", "# [[source]]"):
            is_comment = stripped.startswith("#")
            j = i + 1
            while j < len(lines) and lines[j].strip() and lines[j].strip().startswith("#") == is_comment \
                    and not lines[j].strip().lstrip("# ").startswith("["):
                j += 1
            (commented if is_comment else active).append((i, j))
            i = j
        else:
            i += 1
    return lines, active, commented


def variants(text):
    """{kind: text} with each commented [[source]] block in place of the active ones."""
    lines, active, commented = source_blocks(text)
    out = {}
    if len(active) != 1:
        fail(f"gslb.toml: expected one active [[source]], found {len(active)}")
        return out
    a0, a1 = active[0]
    for c0, c1 in commented:
        block = [re.sub(r"^(\s*)# ?", r"\1", ln, count=1) for ln in lines[c0:c1]]
        try:
            kind = tomllib.loads("\n".join(block))["source"][0]["kind"]
        except (tomllib.TOMLDecodeError, KeyError, IndexError) as e:
            fail(f"gslb.toml: the commented [[source]] at line {c0 + 1} does not parse: {e}")
            continue
        out[kind] = "\n".join(lines[:a0] + block + lines[a1:])
    if "karmada" not in out:
        fail("gslb.toml: no commented [[source]] variant of kind karmada")
    return out


def quorum_variant(text):
    """The config with its commented [quorum] table turned on, or None (a failure)."""
    lines = text.split("\n")
    starts = [i for i, ln in enumerate(lines) if ln.strip() == "# [quorum]"]
    if len(starts) != 1:
        fail(f"gslb.toml: expected one commented [quorum], found {len(starts)}")
        return None
    i = j = starts[0]
    while j < len(lines) and lines[j].strip().startswith("#"):
        j += 1
    block = [re.sub(r"^(\s*)# ?", r"\1", ln, count=1) for ln in lines[i:j]]
    return "\n".join(lines[:i] + block + lines[j:])


def for_check(text, name):
    """The config with the token, state and kubeconfig paths pointed into OUT."""
    cfg = tomllib.loads(text)
    server = cfg.get("server", {})
    out = text
    for keyname, replacement in [
        ("admin_token_file", os.path.join(OUT, "admin-token")),
        ("state_file", os.path.join(OUT, "state", "state.json")),
    ]:
        value = server.get(keyname)
        if value is None:
            continue
        quoted = json.dumps(value)
        if out.count(quoted) != 1:
            fail(f"{name}: cannot rewrite server.{keyname} = {quoted} (found {out.count(quoted)} times)")
            continue
        out = out.replace(quoted, json.dumps(replacement))
    # Every active `kubeconfig = "..."` line is a [[source]]'s (no other table has the key).
    kubeconfig = os.path.join(OUT, "source.kubeconfig")
    out, n = SOURCE_KUBECONFIG.subn(lambda m: m.group(1) + json.dumps(kubeconfig), out)
    wanted = sum(1 for src in cfg.get("source", []) if "kubeconfig" in src)
    if n != wanted:
        fail(f"{name}: rewrote {n} kubeconfig paths, but {wanted} [[source]] tables have one")
    with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
        f.write(out)
    return cfg


def write_config(text, cfg):
    """OUT/gslb.toml and OUT/gslb-variant-KIND.toml for check-config; returns the variants."""
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "admin-token"), "w", encoding="utf-8") as f:
        f.write("0123456789abcdef0123456789abcdef\n")  # a dummy: 32 characters
    with open(os.path.join(OUT, "source.kubeconfig"), "w", encoding="utf-8") as f:
        f.write(DUMMY_KUBECONFIG)
    os.makedirs(os.path.join(OUT, "state"), exist_ok=True)
    for_check(text, "gslb.toml")
    written = {}
    for kind, variant in variants(text).items():
        name = f"gslb-variant-{kind}.toml"
        written[kind] = for_check(variant, name)
    quorum = quorum_variant(text)
    if quorum is not None:
        written["quorum"] = for_check(quorum, "gslb-variant-quorum.toml")
    ok(f"config written to {rel(os.path.join(OUT, 'gslb.toml'))}, with the variants "
       f"{', '.join(sorted(written)) or 'none'} (token, state and kubeconfig paths rewritten)")
    return written


def glue(cfg):
    """{address: name server} of every in-zone name server's A/AAAA glue."""
    out = {}
    for zone in cfg.get("zone", []):
        origin = zone["name"].rstrip(".").lower()
        for ns in zone.get("nameservers", []):
            ns = ns.rstrip(".").lower()
            if not (ns == origin or ns.endswith("." + origin)):
                continue
            rel_name = ns[: -len(origin)].rstrip(".") or "@"
            for r in zone.get("records", []):
                name = r["name"].rstrip(".").lower()
                if r["type"].upper() in ("A", "AAAA") and name in (rel_name, ns):
                    out[r["value"]] = ns
    return out


def addr_port(s):
    host, _, port = s.rpartition(":")
    return ipaddress.ip_address(host.strip("[]")), int(port)


# --- checks of the Kubernetes objects against each other and the config ---------------

def check_workload(objects, cfg, source_variants=()):
    deploy = one(objects, "Deployment", "gslb")
    if not deploy:
        return
    spec = deploy["spec"]
    pod = spec["template"]["spec"]
    pod_labels = spec["template"]["metadata"].get("labels", {})
    c = pod["containers"][0]

    def matches(selector, what):
        sel = selector.get("matchLabels", selector)
        if not sel or any(pod_labels.get(k) != v for k, v in sel.items()):
            fail(f"{what}: selector {sel} does not match the gslb pod labels {pod_labels}")
            return False
        return True

    matches(spec["selector"], "Deployment gslb")
    if spec.get("replicas", 1) < 2:
        fail("Deployment gslb: needs at least 2 replicas")
    anti = pod.get("affinity", {}).get("podAntiAffinity", {})
    terms = anti.get("requiredDuringSchedulingIgnoredDuringExecution", []) + [
        t["podAffinityTerm"] for t in anti.get("preferredDuringSchedulingIgnoredDuringExecution", [])]
    if not any(t.get("topologyKey") == "kubernetes.io/hostname" and matches(t["labelSelector"], "anti-affinity")
               for t in terms):
        fail("Deployment gslb: no pod anti-affinity on kubernetes.io/hostname")
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    if not (psc.get("runAsNonRoot") or csc.get("runAsNonRoot")):
        fail("Deployment gslb: runAsNonRoot is not set")
    if (csc.get("runAsUser", psc.get("runAsUser")) or 0) == 0:
        fail("Deployment gslb: runs as uid 0")
    if csc.get("readOnlyRootFilesystem") is not True:
        fail("Deployment gslb: readOnlyRootFilesystem is not true")
    if csc.get("allowPrivilegeEscalation") is not False:
        fail("Deployment gslb: allowPrivilegeEscalation is not false")
    caps = csc.get("capabilities", {})
    if caps.get("drop") != ["ALL"]:
        fail("Deployment gslb: capabilities must drop ALL")
    if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
        fail(f"Deployment gslb: adds capabilities other than NET_BIND_SERVICE: {caps.get('add')}")
    res = c.get("resources", {})
    for part in ("requests", "limits"):
        for r in ("cpu", "memory"):
            if r not in res.get(part, {}):
                fail(f"Deployment gslb: resources.{part}.{r} is not set")

    ports = {p["name"]: p for p in c.get("ports", [])}
    server = cfg.get("server", {})
    dns_ports = set()
    for a in server.get("dns_listen", []):
        ip, port = addr_port(a)
        dns_ports.add(port)
        for proto in ("UDP", "TCP"):
            if not any(p["containerPort"] == port and p.get("protocol", "TCP") == proto for p in ports.values()):
                fail(f"Deployment gslb: no {proto} containerPort {port} for dns_listen {a}")
        if port < 1024 and "NET_BIND_SERVICE" not in caps.get("add", []):
            fail(f"Deployment gslb: dns_listen {a} is a privileged port, but NET_BIND_SERVICE is not added")
    admin_ip, admin_port = addr_port(server.get("admin_listen", "127.0.0.1:19153"))
    if ports.get("admin", {}).get("containerPort") != admin_port:
        fail(f"Deployment gslb: port 'admin' is not admin_listen's port {admin_port}")
    if admin_ip.is_loopback:
        fail("config: admin_listen is on loopback: kubelet probes and Prometheus cannot reach it")
    elif not server.get("admin_token_file"):
        fail("config: admin_listen is off loopback without admin_token_file")
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = c.get(probe, {}).get("httpGet", {})
        if get.get("path") != path or get.get("port") not in ("admin", admin_port):
            fail(f"Deployment gslb: {probe} must GET {path} on the admin port")
    pre = c.get("lifecycle", {}).get("preStop")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if not pre:
        fail("Deployment gslb: no preStop hook (readiness must drop before DNS stops)")
    elif "sleep" in pre and pre["sleep"]["seconds"] + 5 > grace:
        fail(f"Deployment gslb: preStop sleep {pre['sleep']['seconds']}s leaves too little "
             f"of the {grace}s grace period")

    # Mounts: config, token and state where the args and the config say.
    mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}

    def volume_at(path):
        best = None
        for m in mounts.values():
            mp = m["mountPath"].rstrip("/")
            if path.startswith(mp + "/") and (best is None or len(mp) > len(best[0]["mountPath"])):
                best = (m, volumes.get(m["name"], {}))
        return best

    args = c.get("args", [])
    conf = args[args.index("--config") + 1] if "--config" in args else None
    found = volume_at(conf) if conf else None
    if not found or found[1].get("configMap", {}).get("name") != "gslb-config" \
            or os.path.basename(conf) not in one(objects, "ConfigMap", "gslb-config").get("data", {}):
        fail(f"Deployment gslb: --config {conf} is not a key of ConfigMap gslb-config mounted there")
    token = server.get("admin_token_file")
    if token:
        found = volume_at(token)
        secret_name = found and found[1].get("secret", {}).get("secretName")
        secret = one(objects, "Secret", secret_name) if secret_name else {}
        keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
        if not secret_name or os.path.basename(token) not in keys:
            fail(f"config: admin_token_file {token} is not a key of a Secret mounted there")
    sa = one(objects, "ServiceAccount", pod.get("serviceAccountName", "default"))
    automount = pod.get("automountServiceAccountToken", sa.get("automountServiceAccountToken", True))
    for cf in [cfg] + list(source_variants):
        for src in cf.get("source", []):
            kc = src.get("kubeconfig")
            if kc:
                found = volume_at(kc)
                secret_name = found and found[1].get("secret", {}).get("secretName")
                secret = one(objects, "Secret", secret_name) if secret_name else {}
                keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
                if not secret_name or os.path.basename(kc) not in keys:
                    fail(f"config: source {src.get('name')}: kubeconfig {kc} is not a key of a Secret mounted there")
            elif not automount:
                fail(f"config: source {src.get('name')} has no kubeconfig (in-cluster credentials), "
                     f"but the pod does not mount its service account token")
    state = server.get("state_file")
    if state:
        found = volume_at(state)
        if not found or "emptyDir" not in found[1] and "persistentVolumeClaim" not in found[1] \
                or found[0].get("readOnly"):
            fail(f"config: state_file {state} is not on a writable volume (the root filesystem is read-only)")
    ok("Deployment gslb: replicas, anti-affinity, security context, resources, probes, preStop, mounts")

    # Services, PDB, NetworkPolicy.
    services = [o for k, o in objects.items() if k[1] == "Service"]
    for s in services:
        name = s["metadata"]["name"]
        matches(s["spec"]["selector"], f"Service {name}")
        for p in s["spec"]["ports"]:
            tp = p.get("targetPort", p["port"])
            cp = ports.get(tp) if isinstance(tp, str) else next(
                (q for q in ports.values() if q["containerPort"] == tp), None)
            if not cp or cp.get("protocol", "TCP") != p.get("protocol", "TCP"):
                fail(f"Service {name}: port {p.get('name')} targets {tp}/{p.get('protocol', 'TCP')}, "
                     f"which the container does not expose")
    dns_svc = one(objects, "Service", "gslb-dns")
    if dns_svc:
        if dns_svc["spec"].get("type") != "LoadBalancer":
            fail("Service gslb-dns: must be a LoadBalancer")
        got = {(p["port"], p.get("protocol", "TCP")) for p in dns_svc["spec"]["ports"]}
        if not {(53, "UDP"), (53, "TCP")} <= got:
            fail("Service gslb-dns: must expose 53/UDP and 53/TCP")
    pdb = one_of_kind(objects, "PodDisruptionBudget")
    if pdb:
        matches(pdb["spec"]["selector"], "PodDisruptionBudget")
    np = one_of_kind(objects, "NetworkPolicy")
    if np:
        matches(np["spec"]["podSelector"], "NetworkPolicy")
        open_ports, restricted = set(), set()
        for rule in np["spec"].get("ingress", []):
            for p in rule.get("ports", []):
                port = p["port"]
                port = ports[port]["containerPort"] if isinstance(port, str) else port
                (restricted if rule.get("from") else open_ports).add((port, p.get("protocol", "TCP")))
        for port in dns_ports:
            if not {(port, "UDP"), (port, "TCP")} <= open_ports:
                fail(f"NetworkPolicy: DNS port {port} must be open on UDP and TCP")
        if (admin_port, "TCP") in open_ports or (admin_port, "TCP") not in restricted:
            fail(f"NetworkPolicy: the admin port {admin_port} must be admitted only from listed peers")
    ok("Services, PodDisruptionBudget and NetworkPolicy match the gslb pods and ports")


# --- Clusternet -----------------------------------------------------------------------

def check_clusternet(objects, crds, clusters, glue_ips):
    d = os.path.join(DEPLOY, "clusternet")
    feeds, locals_ = None, {}
    for f in sorted(os.listdir(d)):
        if not f.endswith(".yaml"):
            continue
        for doc in load_docs(os.path.join(d, f)):
            if doc["apiVersion"].split("/")[0].endswith("clusternet.io"):
                validate_cr(doc, crds, f"clusternet/{f}")
            if doc["kind"] == "Subscription":
                feeds = {key(x) for x in doc["spec"]["feeds"]}
            elif doc["kind"] == "Localization":
                m = re.match(r"localization-(.+)\.yaml$", f)
                if not m:
                    fail(f"clusternet/{f}: name Localization files localization-<cluster>.yaml")
                    continue
                locals_.setdefault(m.group(1), []).append(doc)
    if feeds is None:
        fail("clusternet/: no Subscription")
        return
    if feeds != set(objects):
        for k in sorted(set(objects) - feeds, key=str):
            fail(f"Subscription gslb: no feed for {show(k)}")
        for k in sorted(feeds - set(objects), key=str):
            fail(f"Subscription gslb: feed {show(k)} is not in deploy/kubernetes")
    else:
        ok(f"Subscription gslb: feeds are the {len(feeds)} objects of the kustomization")
    if set(locals_) != clusters:
        fail(f"clusternet/: Localizations for {sorted(locals_)}, config clusters {sorted(clusters)}")
    pinned = {}
    for cluster, docs in sorted(locals_.items()):
        if len({x["metadata"]["namespace"] for x in docs}) != 1:
            fail(f"clusternet/localization-{cluster}.yaml: every Localization of a cluster lives in its namespace")
        patched = {}
        for loc in docs:
            feed = key(loc["spec"]["feed"])
            if feed not in feeds:
                fail(f"Localization {loc['metadata']['name']}: feed {show(feed)} is not a Subscription feed")
                continue
            obj = patched.get(feed, copy.deepcopy(objects[feed]))
            for o in loc["spec"].get("overrides", []):
                value = yaml.safe_load(o["value"])
                try:
                    if o["type"] == "JSONPatch":
                        obj = jsonpatch.apply_patch(obj, value)
                    elif o["type"] == "MergePatch":
                        obj = merge_patch(obj, value)
                    else:
                        fail(f"Localization {loc['metadata']['name']}: override type {o['type']} is not checked here")
                except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
                    fail(f"Localization {loc['metadata']['name']}: override {o.get('name')} does not apply: {short(e)}")
            patched[feed] = obj
        for feed, obj in patched.items():
            write_patched(f"clusternet-{cluster}-{feed[1].lower()}-{feed[3]}", obj)
            if feed[1] == "Service" and lb_ip(obj):
                pinned[cluster] = lb_ip(obj)
            if feed[1] == "Deployment" and member_label(obj) != (cluster, cluster):
                fail(f"Localization for {cluster}: member-cluster labels are {member_label(obj)}")
    check_pinned("Clusternet Localizations", pinned, clusters, glue_ips)


# --- Karmada --------------------------------------------------------------------------

def check_karmada(objects, crds, clusters, glue_ips):
    d = os.path.join(DEPLOY, "karmada")
    selected, overrides = set(), []
    for f in sorted(os.listdir(d)):
        if not f.endswith(".yaml"):
            continue
        for doc in load_docs(os.path.join(d, f)):
            if doc["apiVersion"].split("/")[0].endswith("karmada.io"):
                validate_cr(doc, crds, f"karmada/{f}")
            kind = doc["kind"]
            if kind in ("PropagationPolicy", "ClusterPropagationPolicy"):
                ns = doc["metadata"].get("namespace")
                for s in doc["spec"]["resourceSelectors"]:
                    if "name" not in s:
                        fail(f"{kind} {doc['metadata']['name']}: select objects by name")
                        continue
                    if kind == "PropagationPolicy" and s.get("namespace", ns) != ns:
                        fail(f"PropagationPolicy {doc['metadata']['name']}: selects outside its namespace")
                    # A PropagationPolicy selects in its own namespace; a ClusterPropagationPolicy
                    # names the namespace of a namespaced object.
                    k = (s["apiVersion"], s["kind"], ns if kind == "PropagationPolicy" else s.get("namespace"),
                         s["name"])
                    selected.add(k)
            elif kind == "OverridePolicy":
                overrides.append(doc)
    if selected != set(objects):
        for k in sorted(set(objects) - selected, key=str):
            fail(f"Karmada: no (Cluster)PropagationPolicy selects {show(k)}")
        for k in sorted(selected - set(objects), key=str):
            fail(f"Karmada: a policy selects {show(k)}, which is not in deploy/kubernetes")
    else:
        ok(f"Karmada policies select the {len(selected)} objects of the kustomization")
    pinned, seen_clusters = {}, set()
    for op in overrides:
        ns = op["metadata"]["namespace"]
        targets = [(s["apiVersion"], s["kind"], s.get("namespace", ns), s["name"])
                   for s in op["spec"].get("resourceSelectors", [])]
        for t in targets:
            if t not in objects:
                fail(f"OverridePolicy {op['metadata']['name']}: selects {show(t)}, not in deploy/kubernetes")
        for rule in op["spec"].get("overrideRules", []):
            names = rule.get("targetCluster", {}).get("clusterNames", [])
            if not names:
                fail(f"OverridePolicy {op['metadata']['name']}: every rule names its clusters")
            for cluster in names:
                seen_clusters.add(cluster)
                for t in targets:
                    obj = copy.deepcopy(objects.get(t, {}))
                    ov = rule["overriders"]
                    ops = [{"op": p["operator"], "path": p["path"], **({"value": p["value"]} if "value" in p else {})}
                           for p in ov.get("plaintext", [])]
                    for field, path in (("labelsOverrider", "labels"), ("annotationsOverrider", "annotations")):
                        for lo in ov.get(field, []):
                            m = obj.setdefault("metadata", {}).setdefault(path, {})
                            for k2, v in lo["value"].items():
                                if lo["operator"] == "remove":
                                    m.pop(k2, None)
                                else:
                                    m[k2] = v
                    try:
                        obj = jsonpatch.apply_patch(obj, ops)
                    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
                        fail(f"OverridePolicy {op['metadata']['name']} ({cluster}): "
                             f"does not apply to {show(t)}: {short(e)}")
                        continue
                    write_patched(f"karmada-{cluster}-{t[1].lower()}-{t[3]}", obj)
                    if t[1] == "Service" and lb_ip(obj):
                        pinned[cluster] = lb_ip(obj)
                    if t[1] == "Deployment" and member_label(obj) != (cluster, cluster):
                        fail(f"OverridePolicy for {cluster}: member-cluster labels are {member_label(obj)}")
    if seen_clusters != clusters:
        fail(f"Karmada OverridePolicies name {sorted(seen_clusters)}, config clusters {sorted(clusters)}")
    check_pinned("Karmada OverridePolicies", pinned, clusters, glue_ips)


def check_pinned(what, pinned, clusters, glue_ips):
    """Each cluster's DNS address is the glue of one of the zone's name servers."""
    problems = False
    for cluster in sorted(clusters):
        ip = pinned.get(cluster)
        if ip is None:
            fail(f"{what}: no DNS Service address for {cluster}")
            problems = True
        elif ip not in glue_ips:
            fail(f"{what}: {cluster}'s DNS address {ip} is the glue of no name server ({glue_ips})")
            problems = True
    if len(set(pinned.values())) != len(pinned):
        fail(f"{what}: two clusters share a DNS address: {pinned}")
        problems = True
    if set(glue_ips) - set(pinned.values()):
        fail(f"{what}: name servers with no cluster behind them: "
             f"{sorted(glue_ips[i] for i in set(glue_ips) - set(pinned.values()))}")
        problems = True
    if not problems:
        ok(f"{what}: " + ", ".join(f"{c} = {pinned[c]} ({glue_ips[pinned[c]]})" for c in sorted(pinned)))


# --- RBAC against what discovery reads -------------------------------------------------

RESOURCE = re.compile(r'resource\(\s*"([^"]*)",\s*"([^"]*)",\s*"([^"]*)",\s*"([^"]*)",?\s*\)')


def check_rbac():
    """Each discovery RBAC file grants list and watch on exactly what its source watches.

    The resources come from src/discovery/sources.rs: the hub feeds of each source kind,
    and core_resource (what a kubeconfig source reads in each member). kube-runtime's
    watcher only lists and watches.
    """
    with open(os.path.join(REPO, "src", "discovery", "sources.rs"), encoding="utf-8") as f:
        src = f.read()

    def between(a, b):
        i, j = src.find(a), src.find(b, src.find(a) + 1)
        return src[i:j] if i >= 0 and j > i else ""

    watched = {
        "clusternet/hub-rbac.yaml": between("SourceKind::Clusternet => {", "SourceKind::Karmada => {"),
        "karmada/hub-rbac.yaml": between("SourceKind::Karmada => {", "SourceKind::Kubeconfig => {"),
        "kubernetes/rbac.yaml": between("fn core_resource", "\n}\n"),
    }
    for f, code in watched.items():
        want = {(g, plural) for g, _, _, plural in RESOURCE.findall(code)}
        if not want:
            fail(f"src/discovery/sources.rs: cannot find the resources behind deploy/{f}")
            continue
        granted, verbs = set(), set()
        for doc in load_docs(os.path.join(DEPLOY, f)):
            if doc["kind"] in ("ClusterRole", "Role"):
                for rule in doc.get("rules", []):
                    granted |= {(g, r) for g in rule.get("apiGroups", []) for r in rule.get("resources", [])}
                    verbs |= set(rule.get("verbs", []))
        if granted != want:
            fail(f"deploy/{f}: grants {sorted(granted)}, discovery watches {sorted(want)}")
        elif verbs != {"list", "watch"}:
            fail(f"deploy/{f}: verbs {sorted(verbs)}, discovery needs exactly list and watch")
        else:
            ok(f"deploy/{f}: list and watch on {', '.join(r + '.' + g if g else r for g, r in sorted(want))}")


def check_quorum_rbac(quorum_cfg):
    """The quorum RBAC: a Role and RoleBinding in the views' namespace, nothing wider.

    The verbs are what src/quorum/hub.rs does: server-side apply (create the first time,
    patch after), a watcher (list, watch) and the deletion of its own object as it stops;
    the subject is the discovery identity.
    """
    with open(os.path.join(REPO, "src", "config", "validate.rs"), encoding="utf-8") as f:
        m = re.search(r'DEFAULT_VIEW_NAMESPACE: &str = "([^"]+)"', f.read())
    default = m.group(1) if m else None
    namespace = (quorum_cfg or {}).get("quorum", {}).get("namespace", default)
    if namespace is None:
        fail("src/config/validate.rs: cannot find DEFAULT_VIEW_NAMESPACE")
        return
    with open(os.path.join(REPO, "src", "quorum", "hub.rs"), encoding="utf-8") as f:
        hub = f.read()
    if "Patch::Apply" not in hub or "watcher(" not in hub or "api.delete(" not in hub:
        fail("src/quorum/hub.rs: no longer applies, watches and deletes: review the quorum RBAC's verbs")
    for engine in ("clusternet", "karmada"):
        f = f"{engine}/hub-quorum-rbac.yaml"
        docs = load_docs(os.path.join(DEPLOY, f))
        subjects = {(d["metadata"]["name"], d["metadata"]["namespace"])
                    for d in load_docs(os.path.join(DEPLOY, engine, "hub-rbac.yaml"))
                    if d["kind"] == "ServiceAccount"}
        kinds = sorted(d["kind"] for d in docs)
        if kinds != ["Namespace", "Role", "RoleBinding"]:
            fail(f"deploy/{f}: has {kinds}, expected a Namespace, a Role and a RoleBinding (nothing cluster-wide)")
            continue
        role, binding, ns = (next(d for d in docs if d["kind"] == k) for k in ("Role", "RoleBinding", "Namespace"))
        ns = ns["metadata"]["name"]
        granted = {(g, r) for rule in role.get("rules", []) for g in rule.get("apiGroups", [])
                   for r in rule.get("resources", [])}
        verbs = {v for rule in role.get("rules", []) for v in rule.get("verbs", [])}
        bound = {(s["name"], s.get("namespace")) for s in binding.get("subjects", [])
                 if s.get("kind") == "ServiceAccount"}
        if not (ns == namespace == role["metadata"]["namespace"] == binding["metadata"]["namespace"]):
            fail(f"deploy/{f}: namespace {ns}, Role in {role['metadata']['namespace']}, RoleBinding in "
                 f"{binding['metadata']['namespace']}; the views live in {namespace}")
        elif granted != {("", "configmaps")}:
            fail(f"deploy/{f}: grants {sorted(granted)}, the views are ConfigMaps")
        elif verbs != {"create", "patch", "list", "watch", "delete"}:
            fail(f"deploy/{f}: verbs {sorted(verbs)}, the views need exactly create, patch, list, watch and delete")
        elif binding["roleRef"]["name"] != role["metadata"]["name"] or bound != subjects:
            fail(f"deploy/{f}: binds {sorted(bound)} to {binding['roleRef']['name']}, "
                 f"expected {sorted(subjects)} (hub-rbac.yaml) to {role['metadata']['name']}")
        else:
            ok(f"deploy/{f}: create, patch, list, watch and delete on configmaps in {namespace} only")


# --- Prometheus, Grafana, metrics -----------------------------------------------------

METRICS_DIR = os.path.join(REPO, "src", "metrics")


def metric_names():
    src = ""
    for name in sorted(os.listdir(METRICS_DIR)):
        if name.endswith(".rs") and name != "tests.rs":
            with open(os.path.join(METRICS_DIR, name), encoding="utf-8") as f:
                src += f.read()
    consts = dict(re.findall(r'pub const ([A-Z_]+): &str = "(gslb_[a-z0-9_]+)";', src))
    # Histograms of the registry (HistogramOpts) and of the per-target store (targets.rs,
    # a Family with kind "histogram").
    histo_consts = re.findall(r"HistogramOpts::new\(\s*([A-Z_]+)", src)
    histo_consts += re.findall(r'name: ([A-Z_]+),\s*help: "[^"]*",\s*kind: "histogram"', src)
    histos = {consts[c] for c in histo_consts if c in consts}
    names = set(consts.values())
    names |= {h + s for h in histos for s in ("_bucket", "_sum", "_count")}
    if not consts:
        fail("src/metrics/: no metric name constants found")
    return names, set(consts.values())


def gslb_metrics(expr):
    return set(re.findall(r"\bgslb_[a-zA-Z0-9_]+", expr))


def check_prometheus(objects, known):
    d = os.path.join(DEPLOY, "prometheus")
    rules = load_docs(os.path.join(d, "gslb-rules.yaml"))[0]
    pr = load_docs(os.path.join(d, "prometheusrule.yaml"))[0]
    if pr.get("spec", {}).get("groups") != rules["groups"]:
        fail("prometheusrule.yaml: spec.groups differs from gslb-rules.yaml's groups")
    else:
        ok("PrometheusRule gslb: spec.groups equals gslb-rules.yaml")
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    names = {a["alert"] for a in alerts}
    if REQUIRED_ALERTS - names:
        fail(f"gslb-rules.yaml: missing alerts {sorted(REQUIRED_ALERTS - names)}")
    tests = load_docs(os.path.join(d, "gslb-rules.test.yaml"))[0]
    tested = {t["alertname"] for case in tests["tests"] for t in case.get("alert_rule_test", [])
              if t.get("exp_alerts")}
    if names - tested:
        fail(f"gslb-rules.test.yaml: no test sees these alerts fire: {sorted(names - tested)}")
    for a in alerts:
        for m in sorted(gslb_metrics(a["expr"]) - known):
            fail(f"gslb-rules.yaml: alert {a['alert']} uses {m}, which src/metrics/ does not define")
    ok(f"gslb-rules.yaml: {len(alerts)} alerts, each fired by a unit test; their metrics exist")

    sm = load_docs(os.path.join(d, "servicemonitor.yaml"))[0]
    sel = sm["spec"]["selector"]["matchLabels"]
    svcs = [o for k, o in objects.items() if k[1] == "Service"
            and all(o["metadata"].get("labels", {}).get(a) == b for a, b in sel.items())
            and k[2] in sm["spec"].get("namespaceSelector", {}).get("matchNames", [sm["metadata"]["namespace"]])]
    if len(svcs) != 1:
        fail(f"ServiceMonitor gslb: selects {len(svcs)} Services, expected the admin Service only")
    else:
        port_names = {p.get("name") for p in svcs[0]["spec"]["ports"]}
        for ep in sm["spec"]["endpoints"]:
            if ep.get("port") not in port_names:
                fail(f"ServiceMonitor gslb: endpoint port {ep.get('port')} "
                     f"is not a port of {svcs[0]['metadata']['name']}")
        ok(f"ServiceMonitor gslb: scrapes Service {svcs[0]['metadata']['name']} port "
           f"{', '.join(ep['port'] for ep in sm['spec']['endpoints'])}")

    # promtool check config without Kubernetes service discovery (Debian's build has none).
    conf = load_docs(os.path.join(d, "prometheus.yml"))[0]
    for job in conf.get("scrape_configs", []):
        if job.pop("kubernetes_sd_configs", None) is not None:
            job["static_configs"] = [{"targets": ["127.0.0.1:19153"]}]
    conf["rule_files"] = [os.path.join(d, f) for f in conf.get("rule_files", [])]
    with open(os.path.join(OUT, "prometheus-static.yml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(conf, f, sort_keys=False)


def check_dashboard(known):
    path = os.path.join(DEPLOY, "grafana", "gslb-dashboard.json")
    try:
        with open(path, encoding="utf-8") as f:
            dash = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        fail(f"{rel(path)}: does not parse: {e}")
        return
    exprs = []

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("expr", "definition") and isinstance(v, str):
                    exprs.append(v)
                elif k == "query" and isinstance(v, str):
                    exprs.append(v)
                elif k == "query" and isinstance(v, dict) and isinstance(v.get("query"), str):
                    exprs.append(v["query"])
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(dash)
    ids = []
    for p in dash.get("panels", []):
        ids.append(p.get("id"))
        if p.get("type") == "row":
            continue
        refs = [t.get("refId") for t in p.get("targets", [])]
        if not refs or len(set(refs)) != len(refs) or not all(t.get("expr") for t in p["targets"]):
            fail(f"dashboard panel {p.get('title')!r}: needs targets, each with an expr and its own refId")
    if len(set(ids)) != len(ids):
        fail("dashboard: panel ids are not unique")
    used = set().union(*(gslb_metrics(e) for e in exprs)) if exprs else set()
    unknown = used - known
    for m in sorted(unknown):
        fail(f"dashboard queries {m}, which is not a metric of src/metrics/")
    views = {
        "per-app answer": "gslb_app_fail_open",
        "per-target health timeline": "gslb_target_up",
        "probe latency": "gslb_probe_duration_seconds_bucket",
        "query rate by rcode": "gslb_dns_queries_total",
        "failovers": "gslb_answer_changes_total",
    }
    for view, metric in views.items():
        if metric not in used:
            fail(f"dashboard: no {view} panel (nothing queries {metric})")
    if not any("by (rcode)" in e for e in exprs):
        fail("dashboard: no query by rcode")
    if not unknown:
        ok(f"dashboard: {len(ids)} panels, {len(exprs)} queries, {len(used)} gslb metrics, all in src/metrics/")


def check_dockerfile(objects, cfg):
    """The image and the Deployment agree: user, capability for a privileged DNS port."""
    path = os.path.join(REPO, "Dockerfile")
    with open(path, encoding="utf-8") as f:
        lines = [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
    stages = [i for i, ln in enumerate(lines) if ln.upper().startswith("FROM ")]
    if len(stages) < 2:
        fail("Dockerfile: expected a multi-stage build")
        return
    final = lines[stages[-1]:]
    users = [ln.split()[1] for ln in final if ln.upper().startswith("USER ")]
    uid = users[-1].split(":")[0] if users else "0"
    deploy = one(objects, "Deployment", "gslb")
    pod = deploy.get("spec", {}).get("template", {}).get("spec", {})
    run_as = pod.get("containers", [{}])[0].get("securityContext", {}).get(
        "runAsUser", pod.get("securityContext", {}).get("runAsUser"))
    if not uid.isdigit() or int(uid) == 0 or int(uid) != run_as:
        fail(f"Dockerfile: final USER {uid} is not numeric, non-root and the Deployment's runAsUser {run_as}")
    privileged = any(addr_port(a)[1] < 1024 for a in cfg.get("server", {}).get("dns_listen", []))
    if privileged and not any("setcap cap_net_bind_service=+ep" in ln for ln in lines):
        fail("Dockerfile: DNS listens on a privileged port but the binary gets no cap_net_bind_service")
    ok(f"Dockerfile: {len(stages)} stages, runs as {uid} like the Deployment, "
       f"binary has cap_net_bind_service for port 53")


def main():
    os.makedirs(OUT, exist_ok=True)
    print("== deploy/: cross-checks")
    objects = base_objects()
    text, cfg = config_toml(objects)
    if cfg is None:
        return 1
    written = write_config(text, cfg)
    clusters = {c["name"] for c in cfg.get("cluster", [])}
    glue_ips = glue(cfg)
    check_workload(objects, cfg, written.values())
    check_dockerfile(objects, cfg)
    crds = load_crds()
    if not crds:
        fail(f"no CRD schemas under {CRDS}")
        return 1
    check_clusternet(objects, crds, clusters, glue_ips)
    check_karmada(objects, crds, clusters, glue_ips)
    check_rbac()
    check_quorum_rbac(written.get("quorum"))
    known, _ = metric_names()
    check_prometheus(objects, known)
    check_dashboard(known)
    if errors:
        print(f"deploy/ cross-checks: {len(errors)} problems")
        return 1
    print("deploy/ cross-checks: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# A real single-node Kubernetes cluster for backproof's tests, on this machine:
# etcd, kube-apiserver, controller-manager, scheduler and kubelet (built from the
# Go module proxy, pinned in scripts/k8s/), a private containerd with runc and
# the bridge CNI plugin, and the backproof-sandbox/* images imported into it.
#
#   scripts/k8s.sh build   build the binaries into $CACHE/k8s/bin-<key> (once)
#   scripts/k8s.sh up      build if needed, start the cluster, write $STATE/kubeconfig
#   scripts/k8s.sh down    stop what `up` started and delete its state
#   scripts/k8s.sh check   exit 0 if the cluster of `up` answers
#   scripts/k8s.sh import IMAGE...  copy Docker images into the cluster's containerd
#
# State in $BACKPROOF_K8S_DIR (default /tmp/backproof-k8s). Every listener is on
# 127.0.0.1 or the cluster's own bridge; pods get 10.244.<n>.0/24 addresses.
# The API server listens on the bridge (10.244.<n>.1), so Pods reach it; the
# `kubernetes` Service's address (10.96.0.1:443) is routed to it per cluster
# (service_route). There is no kube-proxy: its rules are machine-wide, and two
# clusters on one machine would fight over them.
# A cold build costs about 30 CPU-minutes; later runs find the cached binaries.
set -euo pipefail

SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The cluster's addresses are never reached through a proxy.
export NO_PROXY=${NO_PROXY:+$NO_PROXY,}10.244.0.0/16,10.96.0.0/24 no_proxy=${no_proxy:+$no_proxy,}10.244.0.0/16,10.96.0.0/24
STATE=${BACKPROOF_K8S_DIR:-/tmp/backproof-k8s}
CACHE=${BACKPROOF_CACHE_DIR:-/var/cache/backproof}
LOGS=${BACKPROOF_K8S_LOGS:-$STATE/logs} # outlives `down` when set elsewhere
K8S_VERSION=v1.37.2
SANDBOX_PREFIX=${BACKPROOF_SANDBOX_PREFIX:-backproof-sandbox}

say() { echo "k8s: $*" >&2; }
die() { say "$*"; exit 1; }

# The cache key: Go's version and the pinned modules. A change to either builds anew.
cache_key() {
  { go env GOVERSION; cat "$SCRIPTS"/k8s/kube/go.{mod,sum} "$SCRIPTS"/k8s/etcd/go.{mod,sum} "$SCRIPTS"/k8s/pause/*; } |
    sha256sum | cut -c1-16
}

BIN=''
build() {
  mkdir -p "$CACHE/k8s"
  BIN=$CACHE/k8s/bin-$(cache_key)
  [[ -f $BIN/.complete ]] && return 0
  (
    flock 9
    [[ -f $BIN/.complete ]] && exit 0
    local tmp start log=$CACHE/k8s/build.log
    tmp=$(mktemp -d "$CACHE/k8s/.build.XXXXXX")
    start=$(date +%s)
    say "building Kubernetes $K8S_VERSION and etcd, about 30 CPU-minutes cold (log: $log)"
    local v=${K8S_VERSION#v} ld=''
    local p
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=${v%%.*} -X $p.gitMinor=$(cut -d. -f2 <<<"$v") -X $p.gitTreeState=clean"
    done
    export GOFLAGS="-mod=mod -buildvcs=false -trimpath"
    local jobs=()
    [[ -z ${BACKPROOF_K8S_BUILD_P:-} ]] || jobs=(-p "$BACKPROOF_K8S_BUILD_P")
    (cd "$SCRIPTS/k8s/pause" && logged "$log" env CGO_ENABLED=0 go build "${jobs[@]}" -o "$tmp/pause" .)
    (cd "$SCRIPTS/k8s/etcd" && logged "$log" go build "${jobs[@]}" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
    for p in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl; do
      (cd "$SCRIPTS/k8s/kube" && logged "$log" go build "${jobs[@]}" -ldflags "-s -w$ld" -o "$tmp/$p" "k8s.io/kubernetes/cmd/$p")
    done
    echo "$(($(date +%s) - start))" >"$tmp/.build-seconds"
    touch "$tmp/.complete"
    rm -rf "$BIN"
    mv "$tmp" "$BIN"
    say "built in $(<"$BIN/.build-seconds") s into $BIN"
  ) 9>"$CACHE/k8s/.lock"
}


# logged, apt_install, rand_hex, free_port, closefds
source "$SCRIPTS/lib.sh"

# daemon NAME CMD...: start CMD in the background, its pid in $STATE/pids/NAME.
daemon() {
  local name=$1; shift
  (closefds setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null) &
  echo $! >"$STATE/pids/$name"
}

# await WHAT TRIES CMD...: retry CMD every 0.2 s until it succeeds; fail at
# once, with its log, if a process the cluster started has exited.
await() {
  local what=$1 tries=$2 f; shift 2
  for ((i = 0; i < tries; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    for f in "$STATE"/pids/*; do
      [[ -e $f ]] || continue
      if ! alive "$STATE" "${f##*/}"; then
        tail -n 20 "$LOGS/${f##*/}.log" >&2
        die "${f##*/} exited while waiting for $what (log: $LOGS/${f##*/}.log)"
      fi
    done
    sleep 0.2
  done
  die "$what did not come up (logs: $LOGS)"
}

install_packages() {
  local missing=()
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [[ -x /usr/lib/cni/bridge ]] || missing+=(containernetworking-plugins)
  command -v openssl >/dev/null || missing+=(openssl)
  ((${#missing[@]})) || return 0
  apt_install "$LOGS/apt.log" "${missing[@]}"
}

# A slot (0-9) per running cluster: its bridge, pod subnet and containerd root
# (kept in the cache, so imported images survive `down`).
SLOT=''
take_slot() {
  mkdir -p "$CACHE/k8s/slots"
  local n owner
  for n in {0..9}; do
    if mkdir "$CACHE/k8s/slots/$n.taken" 2>/dev/null; then
      echo "$STATE" >"$CACHE/k8s/slots/$n.taken/state"
      SLOT=$n && echo "$n" >"$STATE/slot" && return 0
    fi
    # A slot whose cluster's etcd is gone is free again.
    owner=$(cat "$CACHE/k8s/slots/$n.taken/state" 2>/dev/null) || continue
    if ! alive "$owner" etcd; then
      [[ $owner == "$STATE" ]] || BACKPROOF_K8S_DIR=$owner bash "${BASH_SOURCE[0]}" down >/dev/null 2>&1 || true
      rm -rf "$CACHE/k8s/slots/$n.taken"
      if mkdir "$CACHE/k8s/slots/$n.taken" 2>/dev/null; then
        echo "$STATE" >"$CACHE/k8s/slots/$n.taken/state"
        SLOT=$n && echo "$n" >"$STATE/slot" && return 0
      fi
    fi
  done
  die "all 10 cluster slots are taken"
}

# alive STATE NAME: is the process recorded in STATE/pids/NAME still ours?
alive() {
  local pid
  pid=$(cat "$1/pids/$2" 2>/dev/null) || return 1
  grep -qF "$1" "/proc/$pid/cmdline" 2>/dev/null
}

pki() {
  local d=$STATE/pki
  mkdir -p "$d"
  (
    cd "$d"
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 -subj /CN=backproof-k8s-ca
    cat >san.cnf <<EOF
[ext]
subjectAltName = DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1,IP:$GATEWAY
EOF
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj /CN=kube-apiserver
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 30 -extfile san.cnf -extensions ext
    # The apiserver's client certificate for the kubelet (logs, exec, port-forward).
    openssl req -newkey rsa:2048 -nodes -keyout kubelet-client.key -out kubelet-client.csr -subj /O=system:masters/CN=kube-apiserver-kubelet-client
    openssl x509 -req -in kubelet-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out kubelet-client.crt -days 30
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
  ) >>"$LOGS/pki.log" 2>&1 || die "PKI failed (log: $LOGS/pki.log)"
}

# kubeconfig FILE TOKEN: a kubeconfig for the apiserver with a static token.
kubeconfig() {
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: backproof
  cluster: {server: "https://$GATEWAY:$API_PORT", certificate-authority: "$STATE/pki/ca.crt"}
users:
- name: user
  user: {token: "$2"}
contexts:
- name: backproof
  context: {cluster: backproof, user: user}
current-context: backproof
EOF
  chmod 600 "$1"
}

API_PORT='' GATEWAY=''
up() {
  mkdir -p "$LOGS" "$STATE/pids"
  if check; then
    return 0
  fi
  down
  mkdir -p "$LOGS" "$STATE/pids"
  (flock 9 && install_packages) 9>"$CACHE/k8s/.apt.lock"
  take_slot
  local n=$SLOT node=backproof-node-$SLOT
  # The pods' bridge, made before the CNI plugin needs it: the API server and
  # the kubelet listen on it (a loopback address is refused for either).
  GATEWAY=10.244.$n.1
  ip link show "bpk8s$n" >/dev/null 2>&1 || ip link add "bpk8s$n" type bridge
  ip addr replace "$GATEWAY/24" dev "bpk8s$n"
  ip link set "bpk8s$n" up
  pki

  # etcd
  local etcd_port peer_port
  etcd_port=$(free_port) peer_port=$(free_port)
  daemon etcd "$BIN/etcd" --name default --data-dir "$STATE/etcd" --unsafe-no-fsync \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "default=http://127.0.0.1:$peer_port" --listen-metrics-urls "" --log-level warn
  await etcd 150 curl -fsS --noproxy '*' "http://127.0.0.1:$etcd_port/health"

  # kube-apiserver: static tokens for the admin, the controllers and the node.
  local admin_token cm_token sched_token node_token
  admin_token=$(rand_hex 16) cm_token=$(rand_hex 16) sched_token=$(rand_hex 16) node_token=$(rand_hex 16)
  (
    umask 077
    cat >"$STATE/pki/tokens.csv" <<EOF
$admin_token,admin,admin,system:masters
$cm_token,system:kube-controller-manager,kcm
$sched_token,system:kube-scheduler,ksched
$node_token,system:node:$node,node,system:nodes
EOF
  )
  API_PORT=$(free_port)
  daemon kube-apiserver "$BIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address "$GATEWAY" --secure-port "$API_PORT" --advertise-address "$GATEWAY" \
    --tls-cert-file "$STATE/pki/apiserver.crt" --tls-private-key-file "$STATE/pki/apiserver.key" \
    --client-ca-file "$STATE/pki/ca.crt" --token-auth-file "$STATE/pki/tokens.csv" \
    --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$STATE/pki/sa.pub" \
    --service-account-signing-key-file "$STATE/pki/sa.key" --service-cluster-ip-range 10.96.0.0/24 \
    --authorization-mode Node,RBAC --kubelet-preferred-address-types InternalIP \
    --kubelet-client-certificate "$STATE/pki/kubelet-client.crt" --kubelet-client-key "$STATE/pki/kubelet-client.key" \
    --enable-admission-plugins NodeRestriction --profiling=false --v 0
  service_route "$n"
  kubeconfig "$STATE/kubeconfig.tmp" "$admin_token"
  kubeconfig "$STATE/cm.kubeconfig" "$cm_token"
  kubeconfig "$STATE/sched.kubeconfig" "$sched_token"
  kubeconfig "$STATE/node.kubeconfig" "$node_token"
  local kc=(--kubeconfig "$STATE/kubeconfig.tmp")
  await kube-apiserver 300 "$BIN/kubectl" "${kc[@]}" get --raw /readyz

  daemon kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig "$STATE/cm.kubeconfig" \
    --authentication-kubeconfig "$STATE/cm.kubeconfig" --authorization-kubeconfig "$STATE/cm.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$(free_port)" --leader-elect=false \
    --service-account-private-key-file "$STATE/pki/sa.key" --root-ca-file "$STATE/pki/ca.crt" \
    --use-service-account-credentials=true --controllers '*,-node-ipam-controller'
  daemon kube-scheduler "$BIN/kube-scheduler" --kubeconfig "$STATE/sched.kubeconfig" \
    --authentication-kubeconfig "$STATE/sched.kubeconfig" --authorization-kubeconfig "$STATE/sched.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$(free_port)" --leader-elect=false

  # The node: a private containerd (root kept per slot in the cache) with runc and a bridge.
  local ctrd=$STATE/containerd root=$CACHE/k8s/slots/$n.containerd
  mkdir -p "$ctrd" "$root" "$STATE/cni" "$STATE/kubelet" "$STATE/pod-logs"
  cat >"$ctrd/config.toml" <<EOF
version = 2
root = "$root"
state = "$ctrd/state"
[grpc]
  address = "$ctrd/containerd.sock"
[ttrpc]
  address = "$ctrd/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$ctrd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/backproof-k8s/pause:1"
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$ctrd/hosts"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni"
EOF
  # No default route in the pods: they reach their bridge, the host through it,
  # and the Service range (service_route).
# firewall: Docker's FORWARD policy is DROP, and bridged traffic passes it
# (br_netfilter); the plugin admits each pod's address (pod to pod).
  cat >"$STATE/cni/10-backproof.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "backproof-k8s-$n", "plugins": [
  {"type": "bridge", "bridge": "bpk8s$n", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.$n.0/24", "gateway": "$GATEWAY"}]],
     "routes": [{"dst": "10.96.0.0/24"}], "dataDir": "$STATE/cni-ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
  {"type": "firewall", "backend": "iptables"}]}
EOF
  # No registry is reachable, and none is tried: every pull goes to a closed
  # port on 127.0.0.1 (images are imported below).
  local reg
  for reg in _default docker.io; do
    mkdir -p "$ctrd/hosts/$reg"
    printf 'server = "http://127.0.0.1:9"\n[host."http://127.0.0.1:9"]\n  capabilities = ["pull", "resolve"]\n' >"$ctrd/hosts/$reg/hosts.toml"
  done
  daemon containerd containerd --config "$ctrd/config.toml"
  local ctr=(ctr -a "$ctrd/containerd.sock" -n k8s.io)
  await containerd 150 "${ctr[@]}" version
  import_images "${ctr[@]}"

  cat >"$STATE/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $GATEWAY
port: $(free_port)
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $(free_port)
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: "$STATE/pki/ca.crt"}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
cgroupRoot: /backproof-k8s-$n
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$ctrd/containerd.sock
podLogsDir: $STATE/pod-logs
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
maxPods: 60
resolvConf: ""
serializeImagePulls: false
EOF
  # The kubelet's cgroup root must exist in every hierarchy (cgroup v1 here).
  local cg
  for cg in /sys/fs/cgroup/*/; do
    [[ -L ${cg%/} ]] || mkdir -p "$cg/backproof-k8s-$n" 2>/dev/null || true
  done
  if [[ -d /sys/fs/cgroup/cpuset/backproof-k8s-$n ]]; then
    cat /sys/fs/cgroup/cpuset/cpuset.cpus >"/sys/fs/cgroup/cpuset/backproof-k8s-$n/cpuset.cpus" 2>/dev/null || true
    cat /sys/fs/cgroup/cpuset/cpuset.mems >"/sys/fs/cgroup/cpuset/backproof-k8s-$n/cpuset.mems" 2>/dev/null || true
  fi
  (flock 9 && save_sysctls) 9>"$CACHE/k8s/.sysctl.lock"
  daemon kubelet "$BIN/kubelet" --config "$STATE/kubelet.yaml" --kubeconfig "$STATE/node.kubeconfig" \
    --root-dir "$STATE/kubelet" --cert-dir "$STATE/kubelet/pki" --hostname-override "$node" --node-ip "$GATEWAY" --v 0
  await "node $node" 300 sh -c "'$BIN/kubectl' --kubeconfig '$STATE/kubeconfig.tmp' get node '$node' -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
  await "default ServiceAccount" 150 "$BIN/kubectl" "${kc[@]}" -n default get serviceaccount default
  mv -f "$STATE/kubeconfig.tmp" "$STATE/kubeconfig" # written last: its presence means "up"
  echo "$BIN" >"$STATE/bin"
  say "up in $SECONDS s: $STATE/kubeconfig"
}

# The host settings every kubelet sets at start. The first cluster up saves
# them, and the last one down puts them back.
KUBELET_SYSCTLS=(vm.overcommit_memory kernel.panic kernel.panic_on_oops)
save_sysctls() {
  local f=$CACHE/k8s/sysctls.orig k
  [[ -f $f ]] && return 0
  if other_clusters; then
    say "another cluster's kubelet may have set the host's sysctls already: not saving them"
    return 0
  fi
  for k in "${KUBELET_SYSCTLS[@]}"; do echo "$k=$(sysctl -n "$k")"; done >"$f.tmp" && mv "$f.tmp" "$f"
}
restore_sysctls() {
  local f=$CACHE/k8s/sysctls.orig
  [[ -f $f ]] || return 0
  other_clusters && return 0
  sysctl -q -p "$f" >/dev/null 2>&1 || say "could not restore $(tr '\n' ' ' <"$f")"
  rm -f "$f"
}
# other_clusters: does a cluster other than ours run (its etcd alive)?
other_clusters() {
  local slot owner
  for slot in "$CACHE"/k8s/slots/*.taken; do
    owner=$(cat "$slot/state" 2>/dev/null) || continue
    [[ $owner != "$STATE" ]] && alive "$owner" etcd && return 0
  done
  return 1
}

# service_route N: what kube-proxy would do for the `kubernetes` Service, for
# this cluster's pods only: 10.96.0.1:443 leads to the API server.
service_route() {
  local chain=BPK8S-SVC-$1
  iptables -w -t nat -N "$chain" 2>/dev/null || iptables -w -t nat -F "$chain"
  iptables -w -t nat -A "$chain" -d 10.96.0.1/32 -p tcp --dport 443 -j DNAT --to-destination "$GATEWAY:$API_PORT"
  iptables -w -t nat -C PREROUTING -i "bpk8s$1" -j "$chain" 2>/dev/null ||
    iptables -w -t nat -I PREROUTING -i "bpk8s$1" -j "$chain"
}

# import_images CTR...: the pause image and the sandbox images, each imported
# again only when Docker's image id changed since the slot's last import.
import_images() {
  local stamp=$CACHE/k8s/slots/$SLOT.images
  mkdir -p "$stamp"
  if ! "$@" images check name==docker.io/backproof-k8s/pause:1 2>/dev/null | grep -q pause; then
    local tmp
    tmp=$(mktemp -d)
    cp "$BIN/pause" "$tmp/pause"
    tar -C "$tmp" -c pause | docker import -c 'ENTRYPOINT ["/pause"]' - backproof-k8s/pause:1 >>"$LOGS/images.log"
    docker save backproof-k8s/pause:1 | "$@" images import - >>"$LOGS/images.log" 2>&1 || die "pause image import failed (log: $LOGS/images.log)"
    rm -rf "$tmp"
  fi
  local images=${BACKPROOF_K8S_IMAGES:-$SANDBOX_PREFIX/postgres:15 $SANDBOX_PREFIX/redis:7 $SANDBOX_PREFIX/ferretdb:1.24}
  local img id f
  for img in $images; do
    id=$(docker image inspect -f '{{.Id}}' "$img" 2>/dev/null) || die "image $img is missing (scripts/sandbox-images.sh builds it)"
    f=$stamp/$(tr '/:' '__' <<<"$img")
    [[ $(cat "$f" 2>/dev/null) == "$id" ]] && continue
    say "importing $img into the cluster's containerd"
    docker save "$img" | "$@" images import --no-unpack=false - >>"$LOGS/images.log" 2>&1 || die "import of $img failed (log: $LOGS/images.log)"
    echo "$id" >"$f"
  done
}

down() {
  [[ -d $STATE ]] || return 0
  rm -f "$STATE/kubeconfig"
  local bin n ctrd=$STATE/containerd
  bin=$(cat "$STATE/bin" 2>/dev/null) || bin=$BIN
  n=$(cat "$STATE/slot" 2>/dev/null) || n=''
  if alive "$STATE" kube-apiserver && [[ -f $STATE/kubeconfig.tmp || -f $STATE/cm.kubeconfig ]]; then
    :
  fi
  stop -KILL kubelet # its pods are killed through containerd below
  if alive "$STATE" containerd; then
    local ctr=(ctr -a "$ctrd/containerd.sock" -n k8s.io) c
    for c in $("${ctr[@]}" tasks ls -q 2>/dev/null); do "${ctr[@]}" tasks kill -s KILL "$c" >/dev/null 2>&1 || true; done
    for c in $("${ctr[@]}" tasks ls -q 2>/dev/null); do "${ctr[@]}" tasks rm -f "$c" >/dev/null 2>&1 || true; done
    for c in $("${ctr[@]}" containers ls -q 2>/dev/null); do "${ctr[@]}" containers rm "$c" >/dev/null 2>&1 || true; done
  fi
  # Their state is deleted below: no graceful shutdown needed.
  stop -KILL containerd kube-scheduler kube-controller-manager kube-apiserver etcd
  # Mounts left under the kubelet's and containerd's dirs (projected volumes, shm, rootfs).
  local m
  for m in $(awk -v s="$STATE/" 'index($2, s) == 1 {print $2}' /proc/self/mounts | sort -r); do umount -l "$m" 2>/dev/null || true; done
  if [[ -n $n ]]; then
    for m in $(awk -v s="$CACHE/k8s/slots/$n.containerd/" 'index($2, s) == 1 {print $2}' /proc/self/mounts | sort -r); do umount -l "$m" 2>/dev/null || true; done
    ip link del "bpk8s$n" 2>/dev/null || true
    iptables -w -t nat -D PREROUTING -i "bpk8s$n" -j "BPK8S-SVC-$n" 2>/dev/null || true
    iptables -w -t nat -F "BPK8S-SVC-$n" 2>/dev/null && iptables -w -t nat -X "BPK8S-SVC-$n" 2>/dev/null || true
    # The firewall plugin's rules of pods that got no CNI DEL (killed above).
    local rule
    iptables -w -S CNI-FORWARD 2>/dev/null | grep -F -- " 10.244.$n." | sed 's/^-A /-D /' |
      while read -r rule; do eval "iptables -w $rule" 2>/dev/null || true; done || true
    local cg
    for cg in /sys/fs/cgroup/*/backproof-k8s-"$n"; do [[ -d $cg ]] && find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null; done
    [[ $(cat "$CACHE/k8s/slots/$n.taken/state" 2>/dev/null) != "$STATE" ]] || rm -rf "$CACHE/k8s/slots/$n.taken"
    (flock 9 && restore_sysctls) 9>"$CACHE/k8s/.sysctl.lock"
  fi
  rm -rf "$STATE"
}

# stop [-SIG] NAME...: stop the processes of $STATE/pids/NAME (and their
# sessions) that are still ours, all at once (SIGTERM by default).
stop() {
  local n pid pids=() sig=-TERM
  [[ $1 != -* ]] || { sig=$1; shift; }
  for n in "$@"; do
    alive "$STATE" "$n" || continue
    pid=$(<"$STATE/pids/$n")
    kill "$sig" -- "-$pid" 2>/dev/null || kill "$sig" "$pid" 2>/dev/null || true
    pids+=("$pid")
  done
  for _ in {1..50}; do
    for n in "${!pids[@]}"; do kill -0 "${pids[$n]}" 2>/dev/null || unset 'pids[n]'; done
    ((${#pids[@]})) || return 0
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -9 -- "-$pid" 2>/dev/null || kill -9 "$pid" 2>/dev/null || true; done
}

# check: is the cluster up and answering?
# A cluster an older k8s.sh started (API server on loopback, no Service
# route) does not count: `up` replaces it.
check() {
  local bin n
  bin=$(cat "$STATE/bin" 2>/dev/null) && n=$(cat "$STATE/slot" 2>/dev/null) && [[ -f $STATE/kubeconfig ]] &&
    grep -qF "server: \"https://10.244.$n.1:" "$STATE/kubeconfig" &&
    iptables -w -t nat -C PREROUTING -i "bpk8s$n" -j "BPK8S-SVC-$n" 2>/dev/null &&
    alive "$STATE" kubelet && alive "$STATE" kube-apiserver &&
    "$bin/kubectl" --kubeconfig "$STATE/kubeconfig" get --raw /readyz >/dev/null 2>&1
}

# import IMAGE...: Docker images into the running cluster's containerd.
import() {
  [[ -S $STATE/containerd/containerd.sock ]] || die "no cluster in $STATE (scripts/k8s.sh up)"
  local img
  for img in "$@"; do
    docker save "$img" | ctr -a "$STATE/containerd/containerd.sock" -n k8s.io images import --no-unpack=false - >&2 ||
      die "import of $img failed"
  done
}

case ${1:-} in
  build) build ;;
  import) shift; import "$@" ;;
  check) check ;;
  up) build && up ;;
  down) BIN=$(cat "$STATE/bin" 2>/dev/null || true) && down ;;
  *) echo "usage: $0 build|up|down|check|import IMAGE..." >&2; exit 2 ;;
esac

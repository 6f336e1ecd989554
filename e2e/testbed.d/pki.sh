# shellcheck shell=bash
# PKI for the testbed, sourced by e2e/testbed. Plain openssl, written once per
# bring-up under $PKI (the state dir is wiped by `down`, so there is no rotation
# and no expiry handling: certificates are valid for 10 years).
# Expects: PKI, NODE_IP, NODE_NAME, API_SERVER, SERVICE_IP (first service IP).

# pki_cert NAME CN O [SAN]: key + certificate signed by the testbed CA.
pki_cert() {
  local name=$1 cn=$2 o=$3 san=${4:-} ext=$PKI/$1.ext subj="/CN=$2"
  [ -n "$o" ] && subj="/O=$o/CN=$cn"
  openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$san" ]; then
      echo "extendedKeyUsage=serverAuth,clientAuth"
      echo "subjectAltName=$san"
    else
      echo "extendedKeyUsage=clientAuth"
    fi
  } > "$ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
    -CAcreateserial -days 3650 -sha256 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$ext"
}

# pki_kubeconfig NAME CERTNAME: a kubeconfig that authenticates with a client cert.
# Certificates are embedded so the file can be copied elsewhere and still work.
pki_kubeconfig() {
  local name=$1 cert=$2
  cat > "$STATE/$name.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: sakila-testbed
  cluster:
    server: $API_SERVER
    certificate-authority-data: $(base64 -w0 < "$PKI/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $(base64 -w0 < "$PKI/$cert.crt")
    client-key-data: $(base64 -w0 < "$PKI/$cert.key")
contexts:
- name: sakila-testbed
  context: {cluster: sakila-testbed, user: $name}
current-context: sakila-testbed
KC
  chmod 600 "$STATE/$name.kubeconfig"
}

pki_all() {
  mkdir -p "$PKI"; chmod 700 "$PKI"
  openssl genrsa -out "$PKI/ca.key" 2048 2>/dev/null
  openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=sakila-testbed-ca" -days 3650 \
    -sha256 -out "$PKI/ca.crt" 2>/dev/null
  pki_cert apiserver kube-apiserver "" \
    "IP:127.0.0.1,IP:$NODE_IP,IP:$SERVICE_IP,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost"
  # The apiserver's client identity towards kubelets (logs, exec, port-forward).
  pki_cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  pki_cert admin kubernetes-admin system:masters
  # The API server's identity towards aggregated API servers (front proxy).
  # Signed by the same CA, as only this CN is accepted as a request header source.
  pki_cert front-proxy-client front-proxy-client ""
  pki_cert controller-manager system:kube-controller-manager ""
  pki_cert scheduler system:kube-scheduler ""
  pki_cert kube-proxy system:kube-proxy ""
  # The Node authorizer only lets a kubelet touch its own node's objects, by CN.
  pki_cert kubelet "system:node:$NODE_NAME" system:nodes
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  local k
  for k in admin controller-manager scheduler kube-proxy kubelet; do
    pki_kubeconfig "$k" "$k"
  done
}

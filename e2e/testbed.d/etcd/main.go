// Command etcd is upstream's server/main.go: go.etcd.io/etcd/server/v3 has
// replace directives, so `go install` refuses it and it is built from this
// tiny module instead (go.mod is generated from versions.env at build time).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}

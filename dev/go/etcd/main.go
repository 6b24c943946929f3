// etcd's own main, built from the server module by dev/lib.sh's go_wrapper_build: the etcd
// module's replace directives make a plain `go install` refuse it.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}

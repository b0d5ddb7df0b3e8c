// CoreDNS with the plugins of a Kubernetes cluster's default Corefile (the one kubeadm writes:
// errors, health, ready, kubernetes, prometheus, forward, cache, loop, reload, loadbalance, log),
// and hosts (the e2e DNS tests run agnhost's /coredns with a hosts-only Corefile).
// The upstream binary links every plugin (cloud DNS providers and their SDKs included); these are
// what cluster DNS uses, and the build stays a few minutes on two cores. CoreDNS's own `coremain`
// runs it; each plugin registers itself when imported, and the directive order is CoreDNS's own
// (core/dnsserver), so a Corefile behaves as with the upstream binary.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

func main() {
	coremain.Run()
}

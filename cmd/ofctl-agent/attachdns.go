package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/attach"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
)

// attach --name and --resolv-conf: the container's DNS name, and its
// resolver for named network namespaces (docs/dns.md).

const (
	nameAuto = "auto" // --name: the Docker container's name, or the namespace's
	nameNone = "none" // --name: no name

	resolvAuto = "auto" // --resolv-conf: write it for a named namespace when the agent serves DNS
	resolvNone = "none"

	// resolvMarker starts every resolv.conf attach writes: it rewrites and
	// removes only its own.
	resolvMarker = "# written by ofctl-agent attach; removed by detach\n"
)

// netnsRoot is where `ip netns` mounts named namespaces and etcNetns where
// `ip netns exec` finds their files (variables for tests).
var (
	netnsRoots = []string{"/var/run/netns", "/run/netns"}
	etcNetns   = "/etc/netns"
)

// netnsName is the name of a namespace path made by `ip netns add`
// (/var/run/netns/NAME), or "".
func netnsName(path string) string {
	clean := filepath.Clean(path)
	for _, root := range netnsRoots {
		if dir, name := filepath.Split(clean); filepath.Clean(dir) == root && name != "" {
			return name
		}
	}
	return ""
}

// dnsName decides the endpoint's name: --name as given (validated), or
// with auto the Docker container's name or the namespace's, when it is a
// DNS label (else a warning and no name: Docker allows _ and .).
func (a attachArgs) dnsName(ctr attach.Container, warn func(string)) (string, error) {
	switch a.name {
	case nameNone, "":
		return "", nil
	case nameAuto:
	default:
		if err := endpoint.ValidateName(a.name); err != nil {
			return "", usageErrorf("--name %q: %v", a.name, err)
		}
		return a.name, nil
	}
	name, from := ctr.Name, "the Docker container's name"
	if name == "" {
		name, from = netnsName(a.target.path), "the network namespace's name"
	}
	if name == "" {
		return "", nil
	}
	if err := endpoint.ValidateName(name); err != nil {
		warn(fmt.Sprintf("%s %q is not a DNS name (%v): the container gets no name (--name NAME gives one)", from, name, err))
		return "", nil
	}
	return name, nil
}

// resolvConfText is the resolv.conf of a container using d.
func resolvConfText(d *agentapi.DNS) []byte {
	var b bytes.Buffer
	b.WriteString(resolvMarker)
	for _, ns := range d.Nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", ns)
	}
	if len(d.Search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(d.Search, " "))
	}
	if len(d.Options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(d.Options, " "))
	}
	return b.Bytes()
}

// writeResolvConf writes /etc/netns/<name>/resolv.conf for a named
// namespace target with --resolv-conf auto, when the agent serves a
// resolver for the network (d). A file attach did not write is left alone
// (a warning). It returns the path written, or "".
func (a attachArgs) writeResolvConf(d *agentapi.DNS, warn func(string)) (string, error) {
	name := netnsName(a.target.path)
	if a.resolvConf != resolvAuto || name == "" || d == nil || len(d.Nameservers) == 0 {
		return "", nil
	}
	path := filepath.Join(etcNetns, name, "resolv.conf")
	old, err := os.ReadFile(path)
	switch {
	case err == nil && !bytes.HasPrefix(old, []byte(resolvMarker)):
		warn(fmt.Sprintf("%s exists and was not written by attach: left as it is (the network's resolver is %s)", path, d.Nameservers[0]))
		return "", nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("resolv.conf: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("resolv.conf: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, resolvConfText(d), 0o644); err != nil {
		return "", fmt.Errorf("resolv.conf: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("resolv.conf: %w", err)
	}
	return path, nil
}

// removeResolvConf removes the resolv.conf attach wrote for a named
// namespace (and its directory when empty); others are left alone.
func removeResolvConf(target string) {
	name := netnsName(target)
	if name == "" {
		return
	}
	path := filepath.Join(etcNetns, name, "resolv.conf")
	if b, err := os.ReadFile(path); err == nil && bytes.HasPrefix(b, []byte(resolvMarker)) {
		os.Remove(path)
		os.Remove(filepath.Dir(path)) // fails unless empty
	}
}

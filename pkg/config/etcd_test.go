package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestEtcdBackend(t *testing.T) {
	file := filepath.Join(t.TempDir(), "agent.yaml")
	body := "cluster-backend: etcd\netcd-endpoints: http://a:2379, http://b:2379\netcd-lease-ttl: 4s\ntunnel-ip: 192.0.2.1\n"
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load([]string{"-config", file, "-etcd-prefix", "/x"})
	if err != nil {
		t.Fatal(err)
	}
	if c.ClusterBackend != "etcd" || c.Etcd.LeaseTTL != 4*time.Second || c.Etcd.Prefix != "/x" ||
		c.Etcd.DialTimeout != 5*time.Second || !slices.Equal(c.Etcd.EndpointList(), []string{"http://a:2379", "http://b:2379"}) {
		t.Fatalf("got %+v", c)
	}
	if d := Default(); d.ClusterBackend != "file" {
		t.Errorf("default backend %q", d.ClusterBackend)
	}
}

func TestEtcdBackendErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"unknown backend", []string{"-cluster-backend", "consul"}, []string{"cluster-backend"}},
		{"etcd needs endpoints and a tunnel IP", []string{"-cluster-backend", "etcd"}, []string{"etcd-endpoints", "tunnel-ip"}},
		{"bad etcd settings", []string{"-cluster-backend", "etcd", "-etcd-endpoints", "http://a:2379", "-tunnel-ip", "192.0.2.1",
			"-etcd-prefix", "x", "-etcd-cert", "c.pem", "-etcd-lease-ttl", "1s", "-etcd-dial-timeout", "0s"},
			[]string{"etcd-prefix", "etcd-cert", "etcd-lease-ttl", "etcd-dial-timeout"}},
		{"etcd user without password file", []string{"-cluster-backend", "etcd", "-etcd-endpoints", "http://a:2379",
			"-tunnel-ip", "192.0.2.1", "-etcd-username", "ofctl-a"}, []string{"etcd-username and etcd-password-file"}},
		{"etcd password file without user", []string{"-cluster-backend", "etcd", "-etcd-endpoints", "http://a:2379",
			"-tunnel-ip", "192.0.2.1", "-etcd-password-file", "/x"}, []string{"etcd-username and etcd-password-file"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(c.args)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestEtcdPassword(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	file := write("agent.yaml", "cluster-backend: etcd\netcd-endpoints: http://a:2379\ntunnel-ip: 192.0.2.1\n"+
		"etcd-username: ofctl-a\netcd-password-file: "+write("pw", "s3cret\r\nignored\n")+"\n")
	c, err := Load([]string{"-config", file})
	if err != nil {
		t.Fatal(err)
	}
	if pw, err := c.Etcd.Password(); err != nil || pw != "s3cret" || c.Etcd.Username != "ofctl-a" {
		t.Errorf("user %q password %q err %v", c.Etcd.Username, pw, err)
	}
	for name, e := range map[string]Etcd{
		"empty":   {PasswordFile: write("empty", "\n")},
		"missing": {PasswordFile: filepath.Join(dir, "nope")},
	} {
		if _, err := e.Password(); err == nil || !strings.Contains(err.Error(), "etcd-password-file") {
			t.Errorf("%s: err %v", name, err)
		}
	}
	if pw, err := (Etcd{}).Password(); pw != "" || err != nil {
		t.Errorf("no file: %q %v", pw, err)
	}
}

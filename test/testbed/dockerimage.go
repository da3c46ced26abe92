package testbed

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// DockerImage is the image Image imports: busybox (Debian's
// busybox-static) with a symlink per applet, PATH=/bin, CMD sh. No
// registry is reachable here, so every test image is made locally.
const DockerImage = "ofat-busybox:latest"

// busyboxTar is the image's root filesystem as a tar stream, built once
// per test process.
var busyboxTar = sync.OnceValues(buildBusyboxTar)

// Image makes sure the engine has DockerImage (imported on first use;
// the engine keeps it across restarts) and returns its name.
func (d *Docker) Image(t testing.TB) string {
	t.Helper()
	if d.imported {
		return DockerImage
	}
	if _, err := d.RunErr("image", "inspect", "--format", "{{.Id}}", DockerImage); err == nil {
		d.imported = true
		return DockerImage
	}
	b, err := busyboxTar()
	if err != nil {
		t.Fatalf("busybox image: %v", err)
	}
	cmd := exec.Command("docker", "import", "-c", "ENV PATH=/bin", "-c", `CMD ["sh"]`, "-", DockerImage)
	cmd.Env = append(os.Environ(), d.Env()...)
	cmd.Stdin = bytes.NewReader(b)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker import into %s: %v: %s", d, err, out)
	}
	d.imported = true
	return DockerImage
}

// buildBusyboxTar writes /bin/busybox and its applet links, a root-only
// /etc/passwd and /etc/group, and the usual empty directories.
func buildBusyboxTar() ([]byte, error) {
	bin, err := exec.LookPath("busybox")
	if err != nil {
		return nil, err
	}
	body, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	list, err := exec.Command(bin, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	add := func(h *tar.Header, data []byte) error {
		h.ModTime, h.Uname, h.Gname = now, "root", "root"
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, dir := range []string{"bin/", "etc/", "proc/", "sys/", "dev/", "root/", "var/", "tmp/"} {
		mode := int64(0o755)
		if dir == "tmp/" {
			mode = 0o1777
		}
		if err := add(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: mode}, nil); err != nil {
			return nil, err
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":  "root:x:0:\n",
	}
	for name, text := range files {
		if err := add(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(text))}, []byte(text)); err != nil {
			return nil, err
		}
	}
	if err := add(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(body))}, body); err != nil {
		return nil, err
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		if err := add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777}, nil); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

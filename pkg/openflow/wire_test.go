package openflow

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/contiv/libOpenflow/openflow13"
	"github.com/contiv/libOpenflow/util"

	"github.com/ofctl-agent/ofctl-agent/pkg/openflow/ofswitchtest"
)

// ovsMsg loads a message captured from Open vSwitch 3.1 (testdata/ovs).
func ovsMsg(t testing.TB, name string) []byte {
	t.Helper()
	s, err := os.ReadFile(filepath.Join("testdata", "ovs", name+".hex"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(s)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ovsMsgs loads every captured message.
func ovsMsgs(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "ovs", "*.hex"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no captured messages: %v", err)
	}
	out := make(map[string][]byte)
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".hex")
		out[name] = ovsMsg(t, name)
	}
	return out
}

func TestReadFrame(t *testing.T) {
	hello := ovsMsg(t, "handshake-HELLO-1")
	tests := []struct {
		name    string
		in      []byte
		want    []byte
		wantErr error
	}{
		{"ovs hello", hello, hello, nil},
		{"two messages, first returned", append(bytes.Clone(hello), hello...), hello, nil},
		{"clean EOF", nil, nil, io.EOF},
		{"truncated header", hello[:5], nil, io.ErrUnexpectedEOF},
		{"truncated body", hello[:12], nil, io.ErrUnexpectedEOF},
		{"length below header", []byte{4, 0, 0, 4, 0, 0, 0, 1}, nil, ErrMalformed},
		{"length zero", []byte{4, 2, 0, 0, 0, 0, 0, 1}, nil, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readFrame(bytes.NewReader(tt.in))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("got %x, want %x", got, tt.want)
			}
		})
	}
}

func TestParseHelloAndNegotiate(t *testing.T) {
	tests := []struct {
		name       string
		in         []byte
		wantVer    uint8
		wantBitmap []uint32
		parseErr   bool
		acceptable bool
	}{
		{"ovs 1.3 only", ovsMsg(t, "handshake-HELLO-1"), 4, []uint32{0x10}, false, true},
		{"1.0 without bitmap", ofswitchtest.Hello(1, nil), 1, nil, false, false},
		{"1.5 without bitmap negotiates down", ofswitchtest.Hello(6, nil), 6, nil, false, true},
		{"1.0 and 1.4 bitmap", ofswitchtest.Hello(5, []uint32{0x22}), 5, []uint32{0x22}, false, false},
		{"1.0 and 1.3 bitmap", ofswitchtest.Hello(4, []uint32{0x12}), 4, []uint32{0x12}, false, true},
		{"unknown element skipped", helloWith(4, []byte{0, 9, 0, 6, 1, 2, 0, 0}, []byte{0, 1, 0, 8, 0, 0, 0, 0x10}), 4, []uint32{0x10}, false, true},
		{"element length 0", helloWith(4, []byte{0, 9, 0, 0, 0, 0, 0, 0}), 4, nil, true, false},
		{"element past end", helloWith(4, []byte{0, 1, 0, 40, 0, 0, 0, 0}), 4, nil, true, false},
		{"trailing bytes", helloWith(4, []byte{0, 1}), 4, nil, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, bm, err := parseHello(tt.in)
			if (err != nil) != tt.parseErr {
				t.Fatalf("parseHello err = %v, want error %v", err, tt.parseErr)
			}
			if err != nil {
				return
			}
			if v != tt.wantVer || !slices.Equal(bm, tt.wantBitmap) {
				t.Fatalf("got version %d bitmap %x, want %d %x", v, bm, tt.wantVer, tt.wantBitmap)
			}
			nerr := negotiate(v, bm)
			var ve *VersionError
			if tt.acceptable != (nerr == nil) || (nerr != nil && !errors.As(nerr, &ve)) {
				t.Fatalf("negotiate = %v, want acceptable %v", nerr, tt.acceptable)
			}
		})
	}
}

func helloWith(version uint8, elems ...[]byte) []byte {
	b := ofswitchtest.Message(0, 1, bytes.Join(elems, nil))
	b[0] = version
	return b
}

func TestHelloBytesAdvertisesOnly13(t *testing.T) {
	b, err := helloBytes()
	if err != nil {
		t.Fatal(err)
	}
	v, bm, err := parseHello(b)
	if err != nil || v != 4 || !slices.Equal(bm, []uint32{1 << 4}) {
		t.Fatalf("our hello: version %d bitmap %x err %v (%x)", v, bm, err, b)
	}
}

func TestEncodeWorksAroundLibOpenflow(t *testing.T) {
	del := openflow13.NewFlowMod()
	del.Command = openflow13.FC_DELETE
	del.OutPort, del.OutGroup = 7, 9
	del.AddInstruction(openflow13.NewInstrGotoTable(3)) // Len() ignores these for deletes
	portMod := openflow13.NewPortMod(3)                 // leaves the header version 0

	tests := []struct {
		name  string
		msg   util.Message
		check func(t *testing.T, b []byte)
	}{
		{"flow_mod out_group written", del, func(t *testing.T, b []byte) {
			if got := binary.BigEndian.Uint32(b[36:40]); got != 7 {
				t.Errorf("out_port = %d, want 7", got)
			}
			if got := binary.BigEndian.Uint32(b[40:44]); got != 9 {
				t.Errorf("out_group = %d, want 9 (libOpenflow writes out_port twice)", got)
			}
		}},
		{"port_mod version set", portMod, func(t *testing.T, b []byte) {
			if b[0] != 4 {
				t.Errorf("version = %d, want 4", b[0])
			}
		}},
		{"echo", openflow13.NewEchoRequest(), func(t *testing.T, b []byte) {
			if len(b) != 8 || b[1] != typeEchoRequest {
				t.Errorf("echo = %x", b)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := encode(tt.msg, 0xabcdef)
			if err != nil {
				t.Fatal(err)
			}
			h, err := parseHeader(b) // checks the header length equals the byte count
			if err != nil {
				t.Fatal(err)
			}
			if h.Xid != 0xabcdef || h.Version != 4 {
				t.Fatalf("header %+v", h)
			}
			tt.check(t, b)
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	noData := openflow13.NewPacketOut() // nil Data: libOpenflow's Len panics
	tests := []struct {
		name string
		msg  util.Message
	}{
		{"nil", nil},
		{"panicking marshal", noData},
		{"shorter than a header", rawMessage{1, 2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := encode(tt.msg, 1); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestSplitAddr(t *testing.T) {
	tests := []struct {
		addr, network, address string
		ok                     bool
	}{
		{"unix:/run/br-int.mgmt", "unix", "/run/br-int.mgmt", true},
		{"tcp:127.0.0.1:6653", "tcp", "127.0.0.1:6653", true},
		{"tcp:[::1]:6653", "tcp", "[::1]:6653", true},
		{"tcp:127.0.0.1", "", "", false},
		{"ssl:1.2.3.4:6653", "", "", false},
		{"/run/br-int.mgmt", "", "", false},
		{"unix:", "", "", false},
	}
	for _, tt := range tests {
		n, a, err := splitAddr(tt.addr)
		if (err == nil) != tt.ok || n != tt.network || a != tt.address {
			t.Errorf("splitAddr(%q) = %q, %q, %v", tt.addr, n, a, err)
		}
	}
}

// rawMessage is an already encoded message (header included).
type rawMessage []byte

func (r rawMessage) MarshalBinary() ([]byte, error) { return append([]byte(nil), r...), nil }
func (r rawMessage) UnmarshalBinary([]byte) error   { return errors.New("send-only") }
func (r rawMessage) Len() uint16                    { return uint16(len(r)) }

package openflow

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/contiv/libOpenflow/openflow13"

	"github.com/ofctl-agent/ofctl-agent/pkg/openflow/ofswitchtest"
)

func TestParseErrorFromOVS(t *testing.T) {
	tests := []struct {
		msg      string
		typeName string
		codeName string
		req      string // SentMessage decoded from the echoed data
	}{
		{"error-badprereq-ERROR-1", "OFPET_BAD_MATCH", "OFPBMC_BAD_PREREQ", "OFPT_FLOW_MOD(add table=0 priority=1000 cookie=0x0) xid=2021"},
		{"error-bundle-add-ERROR-1", "OFPET_BAD_INSTRUCTION", "OFPBIC_BAD_TABLE_ID", "OFPT_FLOW_MOD(add table=3 priority=100 cookie=0x77) xid=2012 in bundle 1"},
		{"error-bundle-commit-ERROR-1", "OFPET_FLOW_MOD_FAILED", "OFPFMFC_OVERLAP", "OFPT_FLOW_MOD(add table=7 priority=100 cookie=0x79) xid=2018 in bundle 2"},
		{"error-bundle-commit-ERROR-2", "OFPET_EXPERIMENTER", "OFPBFC_MSG_FAILED", "OFPT_EXPERIMENTER(bundle COMMIT_REQUEST id=2) xid=2020"},
	}
	for _, tt := range tests {
		t.Run(tt.msg, func(t *testing.T) {
			e, err := parseError(ovsMsg(t, tt.msg))
			if err != nil {
				t.Fatal(err)
			}
			if e.TypeName() != tt.typeName || e.CodeName() != tt.codeName {
				t.Errorf("got %s/%s, want %s/%s", e.TypeName(), e.CodeName(), tt.typeName, tt.codeName)
			}
			if got := e.Request.String(); got != tt.req {
				t.Errorf("request = %q, want %q", got, tt.req)
			}
			if e.Xid != e.Request.Xid {
				t.Errorf("error xid %d != request xid %d", e.Xid, e.Request.Xid)
			}
			if !strings.Contains(e.Error(), tt.typeName+"/"+tt.codeName) {
				t.Errorf("Error() = %q lacks the names", e.Error())
			}
		})
	}
}

func TestParseErrorMalformed(t *testing.T) {
	tests := map[string][]byte{
		"no code":                 ofswitchtest.Message(typeError, 1, []byte{0, 4}),
		"experimenter without id": ofswitchtest.Message(typeError, 1, []byte{0xff, 0xff, 0, 1, 0x4f}),
		"length field lies":       func() []byte { b := ofswitchtest.Error(1, 4, 6, nil); b[3] = 40; return b }(),
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := parseError(b); !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestOFErrorMatching(t *testing.T) {
	e, err := parseError(ofswitchtest.Error(9, openflow13.PET_BAD_MATCH, openflow13.BMC_BAD_FIELD, nil))
	if err != nil {
		t.Fatal(err)
	}
	var wrapped error = errors.Join(errors.New("other"), e)
	var oe *OFError
	if !errors.As(wrapped, &oe) || oe.CodeName() != "OFPBMC_BAD_FIELD" || oe.TypeName() != "OFPET_BAD_MATCH" {
		t.Fatalf("errors.As: %v", oe)
	}
	if !errors.Is(wrapped, &OFError{Type: 4, Code: 6}) || errors.Is(wrapped, &OFError{Type: 4, Code: 7}) {
		t.Fatal("errors.Is by type/code")
	}
	bundle, _ := parseError(ofswitchtest.ExperimenterError(3, openflow13.BEC_TIMEOUT, onfExperimenter, nil))
	if !bundle.IsBundleError(openflow13.BEC_TIMEOUT) || bundle.CodeName() != "OFPBFC_TIMEOUT" {
		t.Fatalf("bundle error: %v", bundle)
	}
}

func TestErrNames(t *testing.T) {
	tests := []struct {
		typ, code uint16
		exp       uint32
		want      string
	}{
		{0, 0, 0, "OFPET_HELLO_FAILED/OFPHFC_INCOMPATIBLE"},
		{1, 13, 0, "OFPET_BAD_REQUEST/OFPBRC_MULTIPART_BUFFER_OVERFLOW"},
		{2, 4, 0, "OFPET_BAD_ACTION/OFPBAC_BAD_OUT_PORT"},
		{4, 6, 0, "OFPET_BAD_MATCH/OFPBMC_BAD_FIELD"},
		{5, 3, 0, "OFPET_FLOW_MOD_FAILED/OFPFMFC_OVERLAP"},
		{13, 5, 0, "OFPET_TABLE_FEATURES_FAILED/OFPTFFC_EPERM"},
		{4, 99, 0, "OFPET_BAD_MATCH/CODE_99"},
		{77, 1, 0, "OFPET_77/CODE_1"},
		{0xffff, 2300, onfExperimenter, "OFPET_EXPERIMENTER/OFPBFC_UNKNOWN"},
		{0xffff, 2315, onfExperimenter, "OFPET_EXPERIMENTER/OFPBFC_BUNDLE_IN_PROGRESS"},
		{0xffff, 2400, onfExperimenter, "OFPET_EXPERIMENTER/ONF_2400"},
		{0xffff, 5, nxExperimenter, "OFPET_EXPERIMENTER/NX_5"},
	}
	for _, tt := range tests {
		if got := ErrTypeName(tt.typ) + "/" + ErrCodeName(tt.typ, tt.code, tt.exp); got != tt.want {
			t.Errorf("(%d,%d,%#x) = %s, want %s", tt.typ, tt.code, tt.exp, got, tt.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	fm := openflow13.NewFlowMod()
	fm.TableId, fm.Priority, fm.Cookie, fm.Command = 5, 300, 0xbeef, openflow13.FC_DELETE_STRICT
	b, err := encode(fm, 77)
	if err != nil {
		t.Fatal(err)
	}
	bundle := &Bundle{id: 12, flags: BundleAtomic}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"flow_mod", b, "OFPT_FLOW_MOD(delete_strict table=5 priority=300 cookie=0xbeef) xid=77"},
		{"bundled flow_mod", bundle.addBytes(b, 77), "OFPT_FLOW_MOD(delete_strict table=5 priority=300 cookie=0xbeef) xid=77 in bundle 12"},
		{"truncated flow_mod", b[:20], "OFPT_FLOW_MOD(add table=0 priority=0 cookie=0x0) xid=77"},
		{"multipart", ofswitchtest.Message(typeMultipartRequest, 3, []byte{0, 13}), "OFPT_MULTIPART_REQUEST(OFPMP_PORT_DESC) xid=3"},
		{"barrier", ofswitchtest.Message(typeBarrierRequest, 8, nil), "OFPT_BARRIER_REQUEST xid=8"},
		{"too short", []byte{4, 14}, "OFPT_HELLO xid=0"},
	}
	for _, tt := range tests {
		if got := describe(tt.in).String(); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestSentRing(t *testing.T) {
	r := newSentRing(4)
	for x := uint32(1); x <= 6; x++ {
		r.put(SentMessage{Xid: x, Type: typeFlowMod})
	}
	for x, want := range map[uint32]bool{1: false, 2: false, 3: true, 6: true, 7: false, 0: false} {
		if _, ok := r.get(x); ok != want {
			t.Errorf("get(%d) found=%v, want %v", x, ok, want)
		}
	}
}

func TestParsePortStatusFromOVS(t *testing.T) {
	tests := []struct {
		msg    string
		reason string
		no     uint32
		name   string
	}{
		{"portstatus-PORT_STATUS-1", "add", 5, "p1"},
		{"portstatus-PORT_STATUS-2", "add", 6, "p2"},
		{"portstatus-PORT_STATUS-3", "delete", 6, "p2"},
	}
	for _, tt := range tests {
		ps, err := parsePortStatus(ovsMsg(t, tt.msg))
		if err != nil {
			t.Fatal(err)
		}
		if ps.ReasonName() != tt.reason || ps.Port.No != tt.no || ps.Port.Name != tt.name || len(ps.Port.HWAddr) != 6 {
			t.Errorf("%s: %+v", tt.msg, ps)
		}
	}
	short := ovsMsg(t, "portstatus-PORT_STATUS-1")[:40]
	short[3] = 40
	if _, err := parsePortStatus(short); !errors.Is(err, ErrMalformed) {
		t.Errorf("short port status: %v", err)
	}
}

func TestParseMultipartFromOVS(t *testing.T) {
	desc, err := parseMultipartReply(ovsMsg(t, "portdesc-MULTIPART_REPLY-1"))
	if err != nil {
		t.Fatal(err)
	}
	ports, err := parsePortDesc(desc.Body)
	if err != nil || len(ports) != 2 || ports[0].Name != "br-int" || ports[0].No != openflow13.P_LOCAL {
		t.Fatalf("port desc: %+v, %v", ports, err)
	}
	st, err := parseMultipartReply(ovsMsg(t, "portstats-MULTIPART_REPLY-1"))
	if err != nil {
		t.Fatal(err)
	}
	stats, err := parsePortStats(st.Body)
	if err != nil || len(stats) != 2 || stats[0].Duration <= 0 {
		t.Fatalf("port stats: %+v, %v", stats, err)
	}
	var total int
	for i, more := range []bool{true, true, false} {
		p, err := parseMultipartReply(ovsMsg(t, "flowstats-many-MULTIPART_REPLY-"+string(rune('1'+i))))
		if err != nil || p.More() != more {
			t.Fatalf("part %d: more=%v err=%v", i, p.More(), err)
		}
		fs, err := parseFlowStats(p.Body, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			if f.DecodeErr != nil || f.Cookie != 0x900 || f.TableID != 9 || len(f.Instructions) != 1 {
				t.Fatalf("flow %+v", f)
			}
		}
		total += len(fs)
	}
	if total != 2000 {
		t.Fatalf("%d flows in 3 parts, want 2000", total)
	}
}

func TestParseFlowStatsNiciraActions(t *testing.T) {
	p, err := parseMultipartReply(ovsMsg(t, "flowstats-MULTIPART_REPLY-1"))
	if err != nil {
		t.Fatal(err)
	}
	fs, err := parseFlowStats(p.Body, true)
	if err != nil || len(fs) != 9 {
		t.Fatalf("%d flows, %v", len(fs), err)
	}
	for _, f := range fs {
		if len(f.MatchBytes) == 0 || len(f.MatchBytes)%8 != 0 {
			t.Errorf("match bytes %x", f.MatchBytes)
		}
		if f.DecodeErr == nil && len(f.Instructions) == 0 && len(f.InstructionBytes) > 0 {
			t.Errorf("instructions not decoded: %+v", f)
		}
	}
}

func TestParseFlowStatsMalformed(t *testing.T) {
	entry := ofswitchtest.FlowStatsEntry(1, 10, 0x5, 3)
	badMatch := bytes.Clone(entry)
	badMatch[51] = 200 // match length past the entry
	unknownInstr := append(bytes.Clone(entry), 0, 42, 0, 8, 0, 0, 0, 0)
	unknownInstr[1] = 64
	tests := []struct {
		name      string
		body      []byte
		wantErr   bool
		decodeErr bool
	}{
		{"one entry", entry, false, false},
		{"two entries", append(bytes.Clone(entry), entry...), false, false},
		{"trailing bytes", append(bytes.Clone(entry), 1, 2, 3), true, false},
		{"entry length 0", make([]byte, 56), true, false},
		{"entry length past body", func() []byte { b := bytes.Clone(entry); b[1] = 200; return b }(), true, false},
		{"match length past entry", badMatch, true, false},
		{"unknown instruction", unknownInstr, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, err := parseFlowStats(tt.body, true)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err %v does not wrap ErrMalformed", err)
				}
				return
			}
			if got := fs[0].DecodeErr != nil; got != tt.decodeErr {
				t.Fatalf("DecodeErr = %v, want error %v", fs[0].DecodeErr, tt.decodeErr)
			}
			if fs[0].Cookie != 5 || fs[0].Priority != 10 || fs[0].PacketCount != 3 {
				t.Fatalf("fixed fields: %+v", fs[0])
			}
		})
	}
}

func TestDecodeMessage(t *testing.T) {
	msgs := ovsMsgs(t)
	tests := []struct {
		msg     string
		wantErr bool
	}{
		{"echo-ECHO_REPLY-1", false},
		{"handshake-FEATURES_REPLY-1", false},
		{"handshake-BARRIER_REPLY-1", false},
		{"error-bundle-add-EXPERIMENTER-1", false},
		{"handshake-HELLO-1", true}, // libOpenflow's hello decoder can loop forever: refused
		{"error-badprereq-ERROR-1", true},
		{"portdesc-MULTIPART_REPLY-1", true}, // libOpenflow has no PORT_DESC decoder: recovered panic
	}
	for _, tt := range tests {
		_, err := decodeMessage(msgs[tt.msg])
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: err = %v, want error %v", tt.msg, err, tt.wantErr)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v does not wrap ErrMalformed", tt.msg, err)
		}
	}
}

func TestParseFeaturesAndBundleCtrl(t *testing.T) {
	f, err := parseFeatures(ovsMsg(t, "handshake-FEATURES_REPLY-1"))
	if err != nil || f.DatapathID != 0x0000020000000001 || f.NTables != 254 {
		t.Fatalf("features %+v %v", f, err)
	}
	bc, err := parseBundleCtrl(ovsMsg(t, "error-bundle-add-EXPERIMENTER-1"))
	if err != nil || bc.ID != 1 || bc.Type != openflow13.OFPBCT_OPEN_REPLY {
		t.Fatalf("bundle ctrl %+v %v", bc, err)
	}
	if _, err := parseBundleCtrl(ovsMsg(t, "echo-ECHO_REPLY-1")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("echo as bundle ctrl: %v", err)
	}
}

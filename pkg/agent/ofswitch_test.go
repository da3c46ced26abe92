package agent

import (
	"errors"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
	"github.com/ofctl-agent/ofctl-agent/pkg/reconcile"
)

// refused hands the reconciler the positions of the flow_mods OVS refused,
// with a reason that reads the same at every retry; other errors pass.
func TestRefusedNamesTheFlowMods(t *testing.T) {
	full := &openflow.OFError{Type: 5, Code: 1, Xid: 77} // OFPET_FLOW_MOD_FAILED/OFPFMFC_TABLE_FULL
	be := &openflow.BundleError{ID: 3, Op: "commit", Errs: []error{full, errors.New("OFPBFC_MSG_FAILED")},
		Refused: []openflow.RefusedMessage{{Index: 41, Err: full}}}
	var re *reconcile.RefusedError
	if err := refused(be); !errors.As(err, &re) || len(re.Refused) != 1 || re.Refused[0].Index != 41 ||
		re.Refused[0].Reason.Error() != "OFPET_FLOW_MOD_FAILED/OFPFMFC_TABLE_FULL" || !errors.As(err, &be) {
		t.Fatalf("refused(%v) = %v", be, err)
	}
	for _, err := range []error{nil, errors.New("connection closed"), &openflow.BundleError{ID: 4, Op: "open"}} {
		if got := refused(err); got != err {
			t.Errorf("refused(%v) = %v, want it unchanged", err, got)
		}
	}
}

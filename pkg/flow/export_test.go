package flow

// CaseFlows exposes the flows of cases to the external test package.
func CaseFlows() []Flow {
	out := make([]Flow, len(cases))
	for i, c := range cases {
		out[i] = c.f
	}
	return out
}

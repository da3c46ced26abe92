package ovsdb

import "errors"

var (
	// ErrInvalidConfig wraps a bad Config, PortSpec or TunnelSpec.
	ErrInvalidConfig = errors.New("invalid ovsdb configuration")
	// ErrNotConnected is returned (wrapped with the context's error) when a
	// call's context ends before a connection to the OVSDB server exists.
	ErrNotConnected = errors.New("not connected to ovsdb")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("ovsdb client closed")
	// ErrBridgeNotFound: the integration bridge does not exist (call EnsureBridge).
	ErrBridgeNotFound = errors.New("bridge not found")
	// ErrPortConflict: a port of that name exists but is not ours to change
	// (on another bridge, or not one interface of the same name).
	ErrPortConflict = errors.New("port conflict")
	// ErrNoRootRow: the database has no Open_vSwitch row (not initialised).
	ErrNoRootRow = errors.New("no Open_vSwitch row")
	// ErrTransaction wraps an OVSDB transaction the server rejected.
	ErrTransaction = errors.New("ovsdb transaction failed")
)

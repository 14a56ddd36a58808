package apiwallet

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"time"
)

// idEncoding is base32hex in lower case: its alphabet sorts like the bytes it
// encodes, so IDs sort by creation time and serve as pagination cursors.
var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// NewID returns an opaque, unique, time-ordered identifier such as
// "usr_06bq5c3k0g4m8f1r2t9s7v5x3a" for prefix "usr". The first 48 bits are
// milliseconds since the epoch and the remaining 80 bits are random.
func NewID(prefix string) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	_, _ = rand.Read(b[6:])
	return prefix + "_" + idEncoding.EncodeToString(b[:])
}

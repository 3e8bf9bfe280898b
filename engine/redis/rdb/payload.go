package rdb

import "encoding/binary"

// DumpPayload is what the DUMP command would return for a key of type t
// whose value serializes as value in an RDB file of the given version: the
// type byte, the value, the version (2 bytes) and a CRC-64 of all of it
// (8 bytes), both little-endian. RESTORE takes it on any server that reads
// that RDB version.
func DumpPayload(t byte, value []byte, version int) []byte {
	p := make([]byte, 0, 1+len(value)+2+8)
	p = append(p, t)
	p = append(p, value...)
	p = binary.LittleEndian.AppendUint16(p, uint16(version))
	return binary.LittleEndian.AppendUint64(p, CRC64(0, p))
}

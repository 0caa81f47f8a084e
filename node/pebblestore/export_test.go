package pebblestore

// BlockCacheHits returns how many reads the block cache has answered.
func BlockCacheHits(s *Store) int64 { return s.db.Metrics().BlockCache.Hits }

// Flush writes the memtables out to tables and waits.
func Flush(s *Store) error { return s.db.Flush() }

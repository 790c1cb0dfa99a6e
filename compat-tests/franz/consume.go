package main

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// consume reads every partition of topic from its start, without a group, until
// it has count records, then fetches for settleMs more so that any record beyond
// them shows too. It prints {"event":"record","record":...} for each record,
// {"event":"fetchError",...} for each fetch error, then {"event":"done"}.
func consume(raw []byte) error {
	var s struct {
		common
		Topic         string `json:"topic"`
		Count         int    `json:"count"`
		SettleMs      int    `json:"settleMs"`
		ReadCommitted bool   `json:"readCommitted"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	opts := []kgo.Opt{
		kgo.ConsumeTopics(s.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100 * time.Millisecond),
	}
	if s.ReadCommitted {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl, err := s.newClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	read := 0
	var settled time.Time // when to stop, once count records are in
	for settled.IsZero() || time.Now().Before(settled) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		fetches := cl.PollFetches(ctx)
		cancel()
		emitFetchErrors(fetches)
		fetches.EachRecord(func(r *kgo.Record) {
			emit("record", fields{"record": fromKgo(r)})
			read++
		})
		if settled.IsZero() && read >= s.Count {
			settled = time.Now().Add(time.Duration(s.SettleMs) * time.Millisecond)
		}
	}
	emit("done", fields{"read": read})
	return nil
}

// emitFetchErrors prints the errors of a poll, leaving out the end of the
// poll's own context.
func emitFetchErrors(fetches kgo.Fetches) {
	fetches.EachError(func(topic string, partition int32, err error) {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return
		}
		emit("fetchError", fields{"topic": topic, "partition": partition, "error": errorName(err)})
	})
}

package main

import (
	"context"
	"encoding/json"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// txn runs the given transactions, in order, with one transactional producer
// (transactionalId): each writes its values to topic and then commits or
// aborts. It prints {"event":"ended","commit",...} after each.
func txn(raw []byte) error {
	var s struct {
		common
		Topic           string `json:"topic"`
		TransactionalID string `json:"transactionalId"`
		Transactions    []struct {
			Values []string `json:"values"`
			Commit bool     `json:"commit"`
		} `json:"transactions"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	cl, err := s.newClient(kgo.TransactionalID(s.TransactionalID), kgo.DefaultProduceTopic(s.Topic))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx := context.Background()
	for _, t := range s.Transactions {
		if err := cl.BeginTransaction(); err != nil {
			return err
		}
		var records []*kgo.Record
		for _, v := range t.Values {
			records = append(records, kgo.StringRecord(v))
		}
		if err := cl.ProduceSync(ctx, records...).FirstErr(); err != nil {
			return err
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(t.Commit)); err != nil {
			return err
		}
		emit("ended", fields{"commit": t.Commit, "values": t.Values})
	}
	return nil
}

// transact is franz-go's exactly-once loop, a GroupTransactSession: as a member
// of group it reads input (read_committed) and, in one transaction per poll,
// writes each value with suffix appended to output and commits the offsets it
// read. The first transaction is aborted when abortFirst is set (the session
// then reads its records again). It prints {"event":"ended","committed",
// "values"} after each transaction and exits once count input records are
// committed.
func transact(raw []byte) error {
	var s struct {
		common
		Input           string `json:"input"`
		Output          string `json:"output"`
		Group           string `json:"group"`
		TransactionalID string `json:"transactionalId"`
		Suffix          string `json:"suffix"`
		Count           int    `json:"count"`
		AbortFirst      bool   `json:"abortFirst"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	opts, err := s.clientOpts(
		kgo.TransactionalID(s.TransactionalID),
		kgo.DefaultProduceTopic(s.Output),
		kgo.ConsumerGroup(s.Group),
		kgo.ConsumeTopics(s.Input),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	if err != nil {
		return err
	}
	session, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return err
	}
	defer session.Close()
	ctx := context.Background()
	for committed, transactions := 0, 0; committed < s.Count; {
		fetches := session.PollFetches(ctx)
		emitFetchErrors(fetches)
		records := fetches.Records()
		if len(records) == 0 {
			continue
		}
		if err := session.Begin(); err != nil {
			return err
		}
		var values []string
		var outputs []*kgo.Record
		for _, r := range records {
			values = append(values, string(r.Value)+s.Suffix)
			outputs = append(outputs, kgo.StringRecord(values[len(values)-1]))
		}
		if err := session.ProduceSync(ctx, outputs...).FirstErr(); err != nil {
			return err
		}
		commit := !(s.AbortFirst && transactions == 0)
		done, err := session.End(ctx, kgo.TransactionEndTry(commit))
		if err != nil {
			return err
		}
		transactions++
		if done {
			committed += len(records)
		}
		emit("ended", fields{"committed": done, "values": values})
	}
	return nil
}

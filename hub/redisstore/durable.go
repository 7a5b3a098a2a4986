package redisstore

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/rueidis"
)

// Durable publishes (Options.MinReplicas). Redis replicates asynchronously:
// a primary acknowledges a write that its replicas may not have yet, and a
// failover that promotes one of them loses it. So a durable publish runs
// the publish script, which stores the message without showing it to
// readers, then WAIT on the same connection, which returns once the given
// number of replicas have everything that connection wrote, and only then
// the commit script, which makes the message visible and notifies its
// readers. A publish whose replicas do not answer in time fails: its
// publisher retries with the same idempotency key, which publishes it once,
// and a message so failed that survives becomes visible with the next
// commit, in id order. What readers are given is thus always on the
// replicas: the ids a reader carries as since stay at or below the id
// counter of any replica that may be promoted, so new ids, which count on
// from it, never fall below them, whatever the clocks of nodes and Redis
// hosts say.

// publishSHA is publishSource's SHA-1, for EVALSHA.
var publishSHA = func() string {
	sum := sha1.Sum([]byte(publishSource))
	return hex.EncodeToString(sum[:])
}()

// durableArg is the scripts' durable argument.
func (s *Store) durableArg() string {
	if s.minReplicas > 0 {
		return "1"
	}
	return "0"
}

// errNotReplicated is the error of a durable publish whose replicas did
// not acknowledge it in time.
var errNotReplicated = errors.New("not acknowledged by enough replicas")

// publishDurably runs the publish script and WAIT in one pipeline on one
// connection: WAIT counts the replicas that have what its connection
// wrote. rueidis sends a pipeline holding a blocking command such as WAIT
// on a connection of its own, so the WAIT holds up no other call, and on a
// Cluster it sends the keyless WAIT to the node of the script's keys.
func (s *Store) publishDurably(ctx context.Context, keys, args []string) (rueidis.RedisMessage, error) {
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	msg, acked, err := s.publishAndWait(cctx, keys, args, false)
	if redisErr, ok := rueidis.IsRedisErr(err); ok && redisErr.IsNoScript() {
		msg, acked, err = s.publishAndWait(cctx, keys, args, true)
	}
	if err != nil {
		if _, isRedis := rueidis.IsRedisErr(err); !isRedis {
			s.suspect()
			if ctx.Err() == nil {
				s.health.failed(err)
			}
		}
		return msg, err
	}
	s.health.succeeded()
	if msg.IsInt64() {
		return msg, nil // the script's refusal: nothing written to wait for
	}
	if acked < int64(s.minReplicas) {
		return msg, fmt.Errorf("%w: %d of %d within %v", errNotReplicated, acked, s.minReplicas, s.replicaTimeout)
	}
	return msg, nil
}

// publishAndWait sends the publish script (as EVALSHA, or as EVAL with its
// source once Redis has said it does not know it) and WAIT, and returns
// the script's reply and the number of replicas WAIT counted.
func (s *Store) publishAndWait(ctx context.Context, keys, args []string, withSource bool) (rueidis.RedisMessage, int64, error) {
	var script rueidis.Completed
	if withSource {
		script = s.client.B().Eval().Script(publishSource).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
	} else {
		script = s.client.B().Evalsha().Sha1(publishSHA).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
	}
	wait := s.client.B().Wait().Numreplicas(int64(s.minReplicas)).Timeout(s.replicaTimeout.Milliseconds()).Build()
	res := s.client.DoMulti(ctx, script, wait)
	msg, err := res[0].ToMessage()
	if err != nil {
		return msg, 0, err
	}
	acked, err := res[1].AsInt64()
	if err != nil {
		return msg, 0, fmt.Errorf("waiting for replicas: %w", err)
	}
	return msg, acked, nil
}

// commit makes the durable publish of id on channel visible and notifies
// its readers (see commitScript).
func (s *Store) commit(ctx context.Context, channel string, id int64) error {
	_, err := s.exec(ctx, commitScript, []string{s.keys.visible()},
		[]string{strconv.FormatInt(id, 10), s.keys.events(), s.publishCmd, channel})
	if err != nil {
		return fmt.Errorf("redis commit script: %w", err)
	}
	return nil
}

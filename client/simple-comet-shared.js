/*
 * simple-comet-shared.js: one connection per subscription for all the tabs
 * of a browser (docs/client.md, "Sharing across tabs").
 *
 * simple-comet-shared.min.js is simple-comet.js followed by this file. It
 * replaces SimpleComet.subscribe with one that has the same arguments, the
 * same callbacks and the same handle, but that shares its reads with every
 * other tab and window of the page's origin (storage partition) that
 * subscribes with the same url (resolved against the page) and client_id.
 * Over HTTP/1.1 a browser opens at most 6 connections per host, so without
 * it the seventh tab of a page waits for a connection that never comes.
 *
 * Of the tabs that share a subscription, one, the leader, reads from the
 * server with the client of simple-comet.js, and posts each reply and each
 * error to the others through a BroadcastChannel. The leader is whichever
 * tab holds a Web Lock named for the subscription; the others wait for it,
 * so when the leader's tab closes (or unsubscribes) the browser hands the
 * lock, and the reads, to the next.
 *
 * Every tab keeps its own cursor, last: the last_id of the last reply its
 * callback got. A reply that continues from last (since == last) is handed
 * out as it is; one that overlaps it (since < last) loses the messages the
 * tab has had (id <= last), or is dropped if nothing is left of it; one
 * that starts after it (since > last: a tab that has just opened, or one
 * that fell behind during a hand-over) is not handed out: the tab asks the
 * leader to read again from its last, and the leader, if it reads from
 * further on, starts a new read from there, whose reply every tab takes
 * what it lacks from. A new leader reads from its own last. So each tab's
 * callback gets every message once and in order, as with its own
 * connection, whichever tab reads.
 *
 * Where the browser has no BroadcastChannel or no Web Locks, subscribe is
 * left as it is: every tab reads for itself.
 */
(function () {
    var SimpleComet = window.SimpleComet,
        subscribe = SimpleComet.subscribe,
        start = SimpleComet.start,
        locks = navigator.locks,
        // What to do at start(), as for the client's own subscriptions; 0
        // once start() has been called.
        waiting = [];

    if (!window.BroadcastChannel || !locks) {
        return;
    }

    // A tab receives replies and takes the lead only after start(): before,
    // its page may not be ready for them.
    SimpleComet.start = function () {
        start();
        while (waiting.length) {
            waiting.shift()();
        }
        waiting = 0;
    };

    SimpleComet.subscribe = function (url, callback, client_id, error, since) {
        var name = 'SimpleComet ' + new URL(url, location.href).href + ' ' + (client_id || ''),
            channel = new BroadcastChannel(name),
            last = since || 0,
            stopped,
            // The leader's subscription, its next read's since, and what
            // lets go of the lock.
            sub,
            cursor,
            release;

        // deliver hands a reply to the callback, as what this tab lacks.
        function deliver(reply) {
            var copy = {}, key, list, i;
            if (stopped) {
                return;
            }
            if (reply.since > last) {
                channel.postMessage({since: last});
                return;
            }
            if (reply.since < last) {
                if (reply.last_id <= last) {
                    return;
                }
                for (key in reply) {
                    copy[key] = reply[key];
                }
                copy.since = last;
                copy.messages = {};
                for (key in reply.messages) {
                    copy.messages[key] = list = [];
                    for (i = 0; i < reply.messages[key].length; i++) {
                        if (reply.messages[key][i].id > last) {
                            list.push(reply.messages[key][i]);
                        }
                    }
                }
                reply = copy;
            }
            last = reply.last_id;
            callback(reply);
        }

        function report(reply) {
            if (!stopped && error) {
                error(reply);
            }
        }

        // read makes this tab read for all from since = from, in place of
        // the read it had.
        function read(from) {
            if (sub) {
                sub.unsubscribe();
            }
            cursor = from;
            sub = subscribe(url, function (reply) {
                cursor = reply.last_id;
                channel.postMessage({reply: reply});
                deliver(reply);
            }, client_id, function (reply) {
                channel.postMessage({error: reply});
                report(reply);
            }, from);
        }

        function begin() {
            if (stopped) {
                return;
            }
            channel.onmessage = function (event) {
                var data = event.data;
                if (data.reply) {
                    deliver(data.reply);
                } else if (data.error) {
                    report(data.error);
                } else if (sub && data.since < cursor) {
                    // A tab lacks what came before this read.
                    read(data.since);
                }
            };
            locks.request(name, function () {
                if (!stopped) {
                    read(last);
                    // Held until unsubscribe, or until the tab goes.
                    return new Promise(function (resolve) {
                        release = resolve;
                    });
                }
            });
            // A tab that opens late asks for what it lacks now, rather
            // than when the leader's next reply shows the gap.
            channel.postMessage({since: last});
        }

        if (waiting) {
            waiting.push(begin);
        } else {
            begin();
        }
        return {
            unsubscribe: function () {
                stopped = 1;
                channel.close();
                if (sub) {
                    sub.unsubscribe();
                }
                if (release) {
                    release();
                }
            }
        };
    };
})();

/*
 * simple-comet.js: the browser client of caddy-comet.
 *
 * It long-polls the comet handler through JSON-P (one <script> node per
 * request), so it works across origins without CORS, and in old browsers:
 * the syntax is ES3 and it needs nothing newer than DOM level 1.
 *
 *   var sub = SimpleComet.subscribe(
 *       'https://comet.example.com/channels/news%7Csport.jsonp',
 *       function (reply) { ... reply.messages.news[0].content ... },
 *       'client id',             // optional: needed for session channels
 *       function (error) { ... error.return_code ... },   // optional
 *       since);                  // optional: the last message id already seen
 *   window.onload = SimpleComet.start;
 *   ...
 *   sub.unsubscribe();
 *
 * The url names the channels (joined by %7C). It may carry a query string
 * of its own, such as a signed token for a route with a jwt block
 * (url + '?token=' + token), which the client keeps: it adds since, cb,
 * client_id and t after it. As in the original client, the
 * callback is called once for each good reply (return_code > 0) with the
 * reply object as the server sent it: {since, messages: {channel: [{content,
 * id, ts}, ...]}, last_id, return_code, error_message}. A read held until
 * http_timeout ends in a good reply too, with messages {}. A callback that
 * throws does not stop the subscription.
 *
 * A subscription made before start() begins when start() is called, a later
 * one at once. Call start() once the page has loaded: a script requested
 * earlier holds the page's load event until the server answers.
 *
 * Each subscription has its own JSON-P callback name and its own cursor
 * (since), so any number of them can run on one page. After a good reply it
 * polls again at once with since=last_id, so it neither misses nor repeats a
 * message. After a failure (the script did not load or did not call back, no
 * reply within SimpleComet.timeout, return_code <= 0) it waits half a second,
 * then twice as long after each further failure, up to 32 seconds, and goes
 * back to polling at once after the next good reply. The error callback, if
 * any, hears of each failure: it gets the error reply (return_code < 0, such
 * as -2 Nonexistent channel), or {return_code: 0} for a request that failed
 * without one (a page cannot see the status of a script or stream the
 * server refused). The subscription goes on retrying until unsubscribed.
 *
 * Like the original, each request carries t=<milliseconds><sequence>, which
 * the server ignores, so that no cache between the page and the server can
 * answer it with an earlier reply.
 */
(function () {
    var root = document.documentElement,
        SimpleComet = window.SimpleComet = {
            // Milliseconds to wait for a reply before trying again. It must
            // exceed the server's http_timeout (30s by default), which is how
            // long the server holds a read that has nothing to return.
            timeout: 40000
        },
        // Subscriptions waiting for start(), as the functions that begin
        // them; 0 once start() has been called.
        waiting = [],
        // Numbers the callback names and the requests, so that no name is
        // used twice on a page and no two requests have the same URL.
        counter = 0;

    SimpleComet.start = function () {
        // waiting.length is undefined once waiting is 0: a second call
        // finds nothing to start.
        while (waiting.length) {
            waiting.shift()();
        }
        waiting = 0;
    };

    SimpleComet.subscribe = function (url, callback, client_id, error, since) {
        var delay = 500,
            name = '_JSONP_' + ++counter,
            stopped,
            // The subscription's event stream, while one is open.
            source;

        since = since || 0;
        // The parameters go after the url's own query string, if it has
        // one; since comes last, as it changes.
        url += (/[?]/.test(url) ? '&' : '?') +
            (client_id ? 'client_id=' + encodeURIComponent(client_id) + '&' : '') + 'since=';

        // retry makes the next request after delay, which doubles after
        // each further failure, and then, unless quiet, tells the page why:
        // the error reply (return_code <= 0) or, when the request failed
        // without one (a script or stream that did not load, a refusal whose
        // status a page cannot see, no reply in time), an object that says
        // so. The request is scheduled first, so that an error callback
        // that throws cannot stop the subscription.
        function retry(reply, quiet) {
            setTimeout(poll, delay);
            if (delay < 30000) {
                delay *= 2;
            }
            // Only an error reply has a return_code here (<= 0); an event
            // or nothing stands for a failed request.
            quiet || error && error(reply && reply.return_code ? reply : {return_code: 0});
        }

        // poll makes the next request, by the transport SimpleComet.transport
        // asks for now: 'jsonp', 'sse' (event streams only, never falling
        // back), or by default event streams where the browser has them.
        // Every request looks again, so setting it moves a subscription over
        // when its current request ends, with its since, losing nothing.
        function poll() {
            var node, opened;

            // done ends a JSON-P request. The first call decides: a reply
            // with return_code > 0 is a success; the error event, the load
            // event of a script that did not call back, the timer or a bad
            // reply are a failure. Later calls (the load event after the
            // reply, the timer, a reply after the timeout) find node gone
            // and do nothing.
            function done(reply) {
                if (node) {
                    root.removeChild(node);
                    node = 0;
                    if (stopped) {
                        return;
                    }
                    if (reply && reply.return_code > 0) {
                        delay = 500;
                        since = reply.last_id;
                        // Poll before handing the reply out, so that a
                        // callback that throws cannot stop the subscription.
                        // The next reply cannot run before this one returns.
                        poll();
                        callback(reply);
                    } else {
                        // A script we gave up on may still run; a new name
                        // keeps it from passing for the reply to the next
                        // request (it calls this done, which ignores it).
                        name = '_JSONP_' + ++counter;
                        retry(reply);
                    }
                }
            }

            if (stopped) {
                return;
            }
            if (window.EventSource && SimpleComet.transport != 'jsonp') {
                // Server-Sent Events: one request, answered with an event
                // per batch of messages whose data is the reply a read
                // gives. On an error the client closes the stream and
                // opens the next one itself, with its since, so that it
                // chooses the transport again and backs off. The url's
                // first '?' follows its path, which ends in .jsonp.
                source = new EventSource(url.replace('jsonp?', 'sse?') + since);
                source.onmessage = function (event) {
                    var reply = JSON.parse(event.data);
                    opened = delay = 500;
                    since = reply.last_id;
                    callback(reply);
                };
                source.onerror = function () {
                    this.close();
                    // A stream that ends after its first event (a reload,
                    // a dropped connection) is reopened without a word,
                    // as a poll that the server answered. One that fails
                    // before (no CORS for this page, an error reply) will
                    // fail again: unless told to keep to streams, the page
                    // goes over to JSON-P, which works there and tells the
                    // error callback what the error is; kept to streams,
                    // the error callback hears of the failure.
                    retry(0, opened || SimpleComet.transport != 'sse' && (SimpleComet.transport = 'jsonp'));
                };
            } else {
                node = document.createElement('script');
                setTimeout(done, SimpleComet.timeout);
                window[name] = node.onload = node.onerror = done;
                node.src = url + since + '&cb=' + name +
                    '&t=' + +new Date() + ++counter;
                root.appendChild(node);
            }
        }

        if (waiting) {
            waiting.push(poll);
        } else {
            poll();
        }
        return {
            // Stops the subscription: its callback is not called again.
            unsubscribe: function () {
                stopped = 1;
                if (source) {
                    source.close();
                }
            }
        };
    };
})();

package comethttp_test

import (
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"

	"github.com/simple-comet/caddy-comet/comethttp"
	"github.com/simple-comet/caddy-comet/hub"
)

// A Go program serves the comet API without Caddy: a hub on the memory
// store, its HTTP state, and a handler mounted under /comet/ of an
// http.Server of its own. Stop, registered on the server's shutdown,
// answers the held reads when the server shuts down.
func Example() {
	h, err := hub.New("default", hub.Config{}, func(o hub.StoreOptions) (hub.Store, error) {
		return hub.NewMemoryStore(o), nil
	})
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()
	state := comethttp.NewHubState(h)
	defer state.Close()
	api, err := comethttp.New(state, comethttp.Options{})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/comet/", http.StripPrefix("/comet", api))
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.RegisterOnShutdown(api.Stop)
	srv.Start()
	defer srv.Close()

	for _, post := range []struct {
		path string
		form url.Values
	}{
		{"/comet/channels.json", url.Values{"channel_id": {"news"}}},
		{"/comet/channels/news.json", url.Values{"content": {"hello"}}},
	} {
		res, err := http.PostForm(srv.URL+post.path, post.form)
		if err != nil {
			log.Fatal(err)
		}
		res.Body.Close()
	}
	res, err := http.Get(srv.URL + "/comet/channels/news.json?since=0")
	if err != nil {
		log.Fatal(err)
	}
	defer res.Body.Close()
	var reply struct {
		Messages map[string][]struct {
			Content string `json:"content"`
		} `json:"messages"`
	}
	if err := json.NewDecoder(res.Body).Decode(&reply); err != nil {
		log.Fatal(err)
	}
	fmt.Println(reply.Messages["news"][0].Content)
	// Output: hello
}

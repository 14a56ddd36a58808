// Command openai calls OpenAI's Chat Completions through the wallet with
// the official openai-go SDK. Only two things change from a direct call:
// the base URL is the wallet's /proxy/openai/v1/ and the API key is a
// wallet access token; the wallet puts the stored OpenAI key in its place.
// Streamed answers (Server-Sent Events) come through as the upstream sends
// them.
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

func main() {
	wallet, token := os.Getenv("WALLET_URL"), os.Getenv("WALLET_TOKEN")
	if wallet == "" || token == "" {
		log.Fatal("set WALLET_URL (http://localhost:6789) and WALLET_TOKEN (awk_…)")
	}
	client := openai.NewClient(
		option.WithBaseURL(strings.TrimRight(wallet, "/")+"/proxy/openai/v1/"),
		option.WithAPIKey(token),
	)

	ctx := context.Background()
	params := openai.ChatCompletionNewParams{
		Model:    openai.ChatModelGPT5_4Mini,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello")},
	}

	var res *http.Response // the raw answer, for the wallet's headers
	completion, err := client.Chat.Completions.New(ctx, params, option.WithResponseInto(&res))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(completion.Choices[0].Message.Content)
	fmt.Printf("key %s, %s attempt(s), strategy %s\n", res.Header.Get("X-Wallet-Key-Id"),
		res.Header.Get("X-Wallet-Attempts"), res.Header.Get("X-Wallet-Strategy"))

	stream := client.Chat.Completions.NewStreaming(ctx, params)
	for stream.Next() {
		if chunk := stream.Current(); len(chunk.Choices) > 0 {
			fmt.Print(chunk.Choices[0].Delta.Content)
		}
	}
	if err := stream.Err(); err != nil {
		log.Fatal(err)
	}
	fmt.Println()
}

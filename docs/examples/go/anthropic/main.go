// Command anthropic sends a message to Claude through the wallet with the
// official Go SDK: the base URL is the wallet's /proxy/anthropic and the API
// key a wallet access token. The wallet sends the stored key upstream as
// x-api-key, with the anthropic-version header the catalog sets.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
)

func main() {
	wallet, token := os.Getenv("WALLET_URL"), os.Getenv("WALLET_TOKEN")
	if wallet == "" || token == "" {
		log.Fatal("set WALLET_URL (http://localhost:6789) and WALLET_TOKEN (awk_…)")
	}
	client := anthropic.NewClient(
		option.WithBaseURL(strings.TrimRight(wallet, "/")+"/proxy/anthropic/"),
		option.WithAPIKey(token),
	)

	msg, err := client.Messages.New(context.Background(), anthropic.MessageNewParams{
		Model:     anthropic.ModelClaudeHaiku4_5,
		MaxTokens: 256,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Say hello"))},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, block := range msg.Content {
		if block.Type == "text" {
			fmt.Println(block.Text)
		}
	}
	fmt.Printf("%d input and %d output tokens\n", msg.Usage.InputTokens, msg.Usage.OutputTokens)
}

// Command stripe creates a Stripe customer through the wallet with the
// official stripe-go SDK. stripe-go owns the URL path (/v1/...), so it
// calls the wallet's root: the wallet access token must be scoped to the
// stripe service alone, which tells the wallet where the call goes.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/stripe/stripe-go/v82"
)

func main() {
	wallet, token := os.Getenv("WALLET_URL"), os.Getenv("WALLET_TOKEN")
	if wallet == "" || token == "" {
		log.Fatal("set WALLET_URL (http://localhost:6789) and WALLET_TOKEN (awk_…, scoped to stripe)")
	}
	backends := stripe.NewBackendsWithConfig(&stripe.BackendConfig{
		URL: stripe.String(strings.TrimRight(wallet, "/")),
	})
	sc := stripe.NewClient(token, stripe.WithBackends(backends))

	cust, err := sc.V1Customers.Create(context.Background(), &stripe.CustomerCreateParams{
		Email: stripe.String("jenny.rosen@example.com"),
		Name:  stripe.String("Jenny Rosen"),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("customer", cust.ID, cust.Email)
}

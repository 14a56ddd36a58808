package catalog

// Defaults returns the built-in services, present from the first start.
//
// Prices and quotas are defaults that admins edit (PUT /admin/services),
// chosen to be realistic for a typical call in 2025 list prices:
//
//   - stripe: API calls are free (Stripe charges per payment, not per
//     request), so 0.
//   - openai: $0.002 per call, a short chat completion on a mid-size model.
//   - anthropic: $0.003 per call, a short message on a mid-size model.
//   - openweather: 1,000 free calls per day per key, then $0.0015 per call
//     (One Call API 3.0 "pay as you call").
//   - googlemaps: $0.005 per call (Geocoding, $5 per 1,000) and 10,000
//     free calls per month per key (the Essentials free allowance).
func Defaults() []Service {
	return []Service{
		{
			Name:        "anthropic",
			DisplayName: "Anthropic",
			BaseURL:     "https://api.anthropic.com",
			Auth:        AuthScheme{Kind: AuthHeader, Name: "x-api-key"},
			Headers:     map[string]string{"anthropic-version": "2023-06-01"},
			PriceMicros: 3_000,
			ErrorShape:  ShapeAnthropic,
			KeyPrefixes: []string{"sk-ant-"},
		},
		{
			Name:        "googlemaps",
			DisplayName: "Google Maps Platform",
			BaseURL:     "https://maps.googleapis.com",
			Auth:        AuthScheme{Kind: AuthQuery, Name: "key"},
			PriceMicros: 5_000,
			FreeQuota:   10_000,
			FreePeriod:  PeriodMonth,
			KeyPrefixes: []string{"AIza"},
		},
		{
			// The openai SDKs' base URL includes /v1, so they call
			// /proxy/openai/v1/...: the catalog holds the bare host.
			Name:        "openai",
			DisplayName: "OpenAI",
			BaseURL:     "https://api.openai.com",
			Auth:        AuthScheme{Kind: AuthBearer},
			PriceMicros: 2_000,
			ErrorShape:  ShapeOpenAI,
			KeyPrefixes: []string{"sk-proj-", "sk-"},
		},
		{
			Name:        "openweather",
			DisplayName: "OpenWeather",
			BaseURL:     "https://api.openweathermap.org",
			Auth:        AuthScheme{Kind: AuthQuery, Name: "appid"},
			PriceMicros: 1_500,
			FreeQuota:   1_000,
			FreePeriod:  PeriodDay,
		},
		{
			Name:        "stripe",
			DisplayName: "Stripe",
			BaseURL:     "https://api.stripe.com",
			Auth:        AuthScheme{Kind: AuthBearer},
			PriceMicros: 0,
			ErrorShape:  ShapeStripe,
			KeyPrefixes: []string{"sk_live_", "sk_test_", "rk_live_", "rk_test_"},
		},
	}
}

package proxy

import "context"

// secret returns a key's plaintext, from the cache when it can.
func (p *Proxy) secret(ctx context.Context, workspaceID, keyID string) ([]byte, error) {
	ck := workspaceID + "\x00" + keyID
	now := p.now().UnixNano()
	if s, ok := p.secrets.get(ck, now); ok {
		return s, nil
	}
	v, err, _ := p.loads.Do("sec\x00"+ck, func() (any, error) {
		epoch := p.epoch.Load()
		s, err := p.keys.Reveal(context.WithoutCancel(ctx), workspaceID, keyID)
		if err != nil {
			return nil, err
		}
		p.secrets.put(ck, s, epoch, now)
		return s, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}

package web

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/ringtap/ringtap/pkg/console/store"
)

// TestRealConsoleTokens rotates the admin token in the page, on the real
// console: create a successor (shown once), switch the tab to it, delete
// the old one, never the last; and deleting the tab's own token signs
// the tab out. The store holds exactly what the page says after each step.
func TestRealConsoleTokens(t *testing.T) {
	skipInKernelMatrix(t)
	rc := mustRealConsole(t)
	ctx := context.Background()
	tb := rc.mustTab(t)
	tb.open("#/tokens")
	tb.do(
		chromedp.WaitVisible(chromedp.CSS("#signin-token")),
		chromedp.SendKeys(chromedp.CSS("#signin-token"), rc.token),
		chromedp.KeyEvent("\r"),
		chromedp.WaitVisible(chromedp.CSS("table.tokens tbody tr")),
	)
	first := store.HashSecret(rc.token).ID()
	row := func(id string) string {
		return fmt.Sprintf(`document.querySelector('table.tokens tr[data-key=%q]')`, id)
	}
	mine := func(id string) string { return row(id) + `.querySelector(".badge").checkVisibility()` }
	deleteBtn := func(id string) string { return fmt.Sprintf(`table.tokens tr[data-key=%q] button.delete`, id) }
	if !eval[bool](tb, `document.querySelector("#nav-tokens").hasAttribute("aria-current")`) {
		t.Error("the Tokens link is not marked current")
	}
	if cells := tb.rowText("table.tokens", first); len(cells) != 4 || cells[0] != "test this tab" || cells[1] != first {
		t.Errorf("the first token's row %q, want test, this tab, %s", cells, first)
	}
	if !eval[bool](tb, fmt.Sprintf(`document.querySelector(%q).disabled`, deleteBtn(first))) {
		t.Error("the last token's Delete is enabled")
	}
	if got := eval[string](tb, fmt.Sprintf(`document.querySelector(%q).title`, deleteBtn(first))); !strings.Contains(got, "create another first") {
		t.Errorf("the last token's Delete says %q", got)
	}

	// A token needs a name.
	tb.do(chromedp.Click(chromedp.CSS("#tf-create")))
	tb.waitFor("the name's message", `document.querySelector("#tf-name-error").innerText.includes("Give the token a name")`)
	if list, _ := rc.st.ListAdminTokens(ctx); len(list) != 1 {
		t.Fatalf("%d tokens after a create without a name, want 1", len(list))
	}

	tb.do(
		tb.fill("#tf-name", "ci"),
		chromedp.Click(chromedp.CSS("#tf-create")),
		chromedp.WaitVisible(chromedp.CSS("#tr-token")),
	)
	secret := tb.text("#tr-token")
	if !regexp.MustCompile(`^rta_[a-z2-7]{52}$`).MatchString(secret) {
		t.Fatalf("the page shows %q as the new token", secret)
	}
	second := store.HashSecret(secret).ID()
	if err := rc.st.CheckAdminToken(ctx, store.HashSecret(secret)); err != nil {
		t.Fatalf("the token the page shows: %v", err)
	}
	tb.waitFor("the new token's row", row(second)+` !== null`)
	if got := tb.text("#tr-label"); got != fmt.Sprintf("Token “ci” (%s), shown only now", second) {
		t.Errorf("result label %q", got)
	}
	if eval[bool](tb, mine(second)) || !eval[bool](tb, mine(first)) {
		t.Error("the tab's token is not the first one before the switch")
	}
	tb.screenshot("real-tokens-created")

	// Switch the tab to it, then delete the first.
	tb.do(chromedp.Click(chromedp.CSS("#tr-use")))
	tb.waitFor("the switch", mine(second)+` && !`+mine(first))
	if got := eval[string](tb, `sessionStorage.getItem("ringtap.admin_token")`); got != secret {
		t.Errorf("the tab keeps %q, want the new token", got)
	}
	tb.do(
		chromedp.Click(chromedp.CSS(deleteBtn(first))),
		chromedp.WaitVisible(chromedp.CSS("#confirm-ok")),
	)
	if got := tb.text("#confirm-text"); !strings.HasPrefix(got, "Anything using this token gets 401") {
		t.Errorf("confirmation %q", got)
	}
	tb.do(chromedp.Click(chromedp.CSS("#confirm-ok")))
	tb.waitFor("the first token gone", row(first)+` === null`)
	if err := rc.st.CheckAdminToken(ctx, store.HashSecret(rc.token)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the deleted token: %v, want not found", err)
	}
	tb.waitFor("the last token's Delete disabled", `document.querySelector(`+fmt.Sprintf("%q", deleteBtn(second))+`).disabled`)
	tb.screenshot("real-tokens-rotated")

	// A third token; the tab deletes its own and is signed out.
	tb.do(
		tb.fill("#tf-name", "ops"),
		chromedp.Click(chromedp.CSS("#tf-create")),
	)
	tb.waitFor("the third token in the list", `document.querySelectorAll("table.tokens tbody tr").length === 2`)
	tb.do(
		chromedp.Click(chromedp.CSS(deleteBtn(second))),
		chromedp.WaitVisible(chromedp.CSS("#confirm-ok")),
	)
	if got := tb.text("#confirm-text"); !strings.HasPrefix(got, "This tab signs in with this token") {
		t.Errorf("confirmation of deleting the tab's own token %q", got)
	}
	tb.do(chromedp.Click(chromedp.CSS("#confirm-ok")))
	tb.do(chromedp.WaitVisible(chromedp.CSS("#signin-token")))
	if got := tb.text("#signin-error"); !strings.Contains(got, "You deleted the token “ci” this tab signed in with") {
		t.Errorf("sign-in message %q", got)
	}
	if got := eval[bool](tb, `sessionStorage.getItem("ringtap.admin_token") === null`); !got {
		t.Error("the tab still keeps a token")
	}
	list, err := rc.st.ListAdminTokens(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "ops" {
		t.Errorf("tokens at the end %+v (%v), want ops alone", list, err)
	}
	tb.screenshot("real-tokens-signed-out")
}

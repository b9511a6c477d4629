// Sign-in: the key goes once, in a POST body, to /api/session; the answer sets an
// HttpOnly session cookie. The key is never put in a URL or in browser storage.
"use strict";

document.getElementById("signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("key");
  const error = document.getElementById("signin-error");
  error.hidden = true;
  let answer;
  try {
    answer = await fetch("/api/session", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ key: input.value.trim() }),
      credentials: "same-origin",
    });
  } catch (_) {
    error.textContent = "The console could not be reached.";
    error.hidden = false;
    return;
  }
  input.value = "";
  if (answer.status === 201) {
    window.location.replace("/console");
    return;
  }
  let detail = "Sign-in failed.";
  try {
    detail = (await answer.json()).detail || detail;
  } catch (_) { /* not JSON */ }
  error.textContent = detail;
  error.hidden = false;
});

// Placeholder client: proves that scripts load from this origin only, with Subresource
// Integrity, under the Content Security Policy. The real client replaces it.
const status = document.getElementById('status');
if (status) status.textContent = 'Anteroom is running.';

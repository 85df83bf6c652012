"""Secrets in pushed occurrences masked before they reach the database or Periskop: sensitive
request headers, secret-looking query and form fields, payment card numbers in free text."""

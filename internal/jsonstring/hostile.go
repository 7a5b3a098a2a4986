package jsonstring

// Hostile are strings that try to break out of a JSON string, a JavaScript
// call, an HTML <script> element or a /* */ comment, or are not valid UTF-8:
// the cases every test of an encoder built on Append starts from.
var Hostile = []string{
	"",
	"plain",
	"</script><script>alert(1)</script>",
	"</SCRIPT>",
	"<!-- <script>",
	`"`,
	`\`,
	`\"`,
	`"});alert(1);//`,
	"]);alert(1)//",
	"'); alert(1); //",
	"a\u2028b\u2029c",
	"\u2028",
	"\u2029",
	"&amp; &lt;",
	"<>&",
	"\x00\x01\x07\x08\x0b\x0c\x1b\x1f",
	"\t\n\r",
	"\x7f",
	"\xff",
	"\xc0\xaf",     // overlong '/'
	"\xed\xa0\x80", // UTF-16 surrogate encoded in UTF-8
	"a\xe2\x80",    // truncated U+2028
	"\xe2\x80\xa8\xff\xe2\x80\xa9",
	"\ufffd",
	"\U0001F600 emoji",
	"日本語",
	"\\u003c/script>",
	"*/ alert(1) /*",
	"/*-secure- */",
	"*/ document.title='PWNED-'+document.domain; /*",
	"**/", "*/*/", "*", "/", "a*",
}

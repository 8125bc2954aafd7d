<?xml version="1.0" encoding="UTF-8"?>
<!-- What a browser shows of our RSS and Atom feeds (both name this file in an
     xml-stylesheet processing instruction): what a feed is, how to add this one to a feed
     reader, and its newest papers. Feed readers ignore it. digest serve applies it itself for
     a browser (which gets HTML); it is also served at /feed.xsl and written next to
     feed.xml, for browsers that apply it. Read as it is: no template variables, everything
     comes from the feed (and the "address" parameter).
     RSS titles and descriptions are HTML-escaped text (see digest/compose/feeds.py): the
     "unescape" template turns &lt; &gt; &amp; back into the text they stand for, as text. -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:atom="http://www.w3.org/2005/Atom"
    exclude-result-prefixes="atom">
  <xsl:output method="html" encoding="UTF-8" indent="yes"
      doctype-system="about:legacy-compat"/>

  <!-- The feed's address, when the server applies this stylesheet itself (digest serve
       does for browsers); a browser applying it has only the feed's own self link. -->
  <xsl:param name="address" select="''"/>
  <xsl:variable name="rss" select="/rss/channel"/>
  <xsl:variable name="atom" select="/atom:feed"/>
  <xsl:variable name="self"
      select="($rss/atom:link[@rel='self']/@href | $atom/atom:link[@rel='self']/@href)[1]"/>

  <xsl:template match="/">
    <html lang="en">
      <head>
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <meta name="robots" content="noindex"/>
        <title>
          <xsl:call-template name="feed-title"/>
          <xsl:text> (feed)</xsl:text>
        </title>
        <style>
          :root { color-scheme: light dark; --ink: #1f2328; --muted: #59636e; --line: #d1d9e0;
                  --box: #f6f8fa; --accent: #0969da; }
          @media (prefers-color-scheme: dark) {
            :root { --ink: #e6edf3; --muted: #9198a1; --line: #3d444d; --box: #151b23;
                    --accent: #4493f8; } }
          * { box-sizing: border-box; }
          body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif;
                 color: var(--ink); overflow-wrap: anywhere; }
          main { max-width: 44rem; margin: 0 auto; padding: 1.5rem 1rem 3rem; }
          a { color: var(--accent); }
          h1 { font-size: 1.6rem; line-height: 1.25; margin: 0.25rem 0 0.5rem; }
          h2 { font-size: 1.15rem; margin: 2rem 0 0.75rem; }
          .badge { display: inline-block; font-size: 0.8rem; font-weight: 600;
                   letter-spacing: 0.04em; text-transform: uppercase; color: var(--muted); }
          .lede { color: var(--muted); margin: 0; }
          .how { background: var(--box); border: 1px solid var(--line); border-radius: 8px;
                 padding: 1rem 1.25rem; margin-top: 1.5rem; }
          .how h2 { margin-top: 0; }
          .address { display: block; padding: 0.5rem 0.75rem; border: 1px solid var(--line);
                     border-radius: 6px; background: Canvas; font: 0.9rem/1.4 ui-monospace,
                     SFMono-Regular, Menlo, monospace; user-select: all; word-break: break-all; }
          .note { color: var(--muted); font-size: 0.9rem; }
          ol { list-style: none; padding: 0; margin: 0; }
          li { padding: 0.85rem 0; border-top: 1px solid var(--line); }
          .entry-title { font-weight: 600; }
          .date { color: var(--muted); font-size: 0.85rem; }
          .summary { margin: 0.25rem 0 0; color: var(--muted); display: -webkit-box;
                     -webkit-line-clamp: 3; -webkit-box-orient: vertical; overflow: hidden; }
        </style>
      </head>
      <body>
        <main>
          <p class="badge">Feed</p>
          <h1><xsl:call-template name="feed-title"/></h1>
          <p class="lede">
            <xsl:call-template name="unescape">
              <xsl:with-param name="text" select="$rss/description"/>
            </xsl:call-template>
            <xsl:value-of select="$atom/atom:subtitle"/>
          </p>
          <section class="how" aria-labelledby="how">
            <h2 id="how">This page is a feed: follow it in a feed reader</h2>
            <p>A feed reader (NetNewsWire, Feedly, Inoreader, Thunderbird, Miniflux and many
              more) checks this address for you and shows each new paper as it is listed.
              To follow it, copy this address and paste it into your reader's
              "Add feed" or "Subscribe" box:</p>
            <xsl:choose>
              <xsl:when test="$address != ''">
                <p><code class="address"><xsl:value-of select="$address"/></code></p>
              </xsl:when>
              <xsl:when test="$self">
                <p><code class="address"><xsl:value-of select="$self"/></code></p>
              </xsl:when>
              <xsl:otherwise>
                <p>Copy the address of this page from your browser's address bar.</p>
              </xsl:otherwise>
            </xsl:choose>
            <xsl:if test="not($self)">
              <p class="note">This is your private feed: it lists the papers that match
                your keywords. Keep its address to yourself.</p>
            </xsl:if>
            <p class="note">Nothing to install? Most feed readers also run in the browser.</p>
          </section>
          <h2>Latest papers</h2>
          <xsl:choose>
            <xsl:when test="$rss/item | $atom/atom:entry">
              <ol>
                <xsl:apply-templates select="$rss/item | $atom/atom:entry"/>
              </ol>
            </xsl:when>
            <xsl:otherwise>
              <p class="note">No papers yet: they appear here after the next listing.</p>
            </xsl:otherwise>
          </xsl:choose>
          <p>
            <a href="{$rss/link | $atom/atom:link[@rel='alternate']/@href}">
              <xsl:text>Go to the site</xsl:text>
            </a>
          </p>
        </main>
      </body>
    </html>
  </xsl:template>

  <xsl:template name="feed-title">
    <xsl:call-template name="unescape">
      <xsl:with-param name="text" select="$rss/title"/>
    </xsl:call-template>
    <xsl:value-of select="$atom/atom:title"/>
  </xsl:template>

  <xsl:template match="item">
    <li>
      <a class="entry-title" href="{link}">
        <xsl:call-template name="unescape">
          <xsl:with-param name="text" select="title"/>
        </xsl:call-template>
      </a>
      <div class="date"><xsl:value-of select="substring(pubDate, 1, 16)"/></div>
      <p class="summary">
        <xsl:call-template name="unescape">
          <xsl:with-param name="text" select="description"/>
        </xsl:call-template>
      </p>
    </li>
  </xsl:template>

  <xsl:template match="atom:entry">
    <li>
      <a class="entry-title" href="{atom:link[@rel='alternate' or not(@rel)][1]/@href}">
        <xsl:value-of select="atom:title"/>
      </a>
      <div class="date"><xsl:value-of select="substring(atom:published, 1, 10)"/></div>
      <p class="summary"><xsl:value-of select="atom:summary"/></p>
    </li>
  </xsl:template>

  <!-- The text an HTML-escaped string stands for: &lt; &gt; and &amp; are the only
       references our RSS text holds (Python's html.escape with quote=False). -->
  <xsl:template name="unescape">
    <xsl:param name="text"/>
    <xsl:call-template name="replace">
      <xsl:with-param name="text">
        <xsl:call-template name="replace">
          <xsl:with-param name="text">
            <xsl:call-template name="replace">
              <xsl:with-param name="text" select="$text"/>
              <xsl:with-param name="from" select="'&amp;lt;'"/>
              <xsl:with-param name="to" select="'&lt;'"/>
            </xsl:call-template>
          </xsl:with-param>
          <xsl:with-param name="from" select="'&amp;gt;'"/>
          <xsl:with-param name="to" select="'&gt;'"/>
        </xsl:call-template>
      </xsl:with-param>
      <xsl:with-param name="from" select="'&amp;amp;'"/>
      <xsl:with-param name="to" select="'&amp;'"/>
    </xsl:call-template>
  </xsl:template>

  <xsl:template name="replace">
    <xsl:param name="text"/>
    <xsl:param name="from"/>
    <xsl:param name="to"/>
    <xsl:choose>
      <xsl:when test="contains($text, $from)">
        <xsl:value-of select="substring-before($text, $from)"/>
        <xsl:value-of select="$to"/>
        <xsl:call-template name="replace">
          <xsl:with-param name="text" select="substring-after($text, $from)"/>
          <xsl:with-param name="from" select="$from"/>
          <xsl:with-param name="to" select="$to"/>
        </xsl:call-template>
      </xsl:when>
      <xsl:otherwise>
        <xsl:value-of select="$text"/>
      </xsl:otherwise>
    </xsl:choose>
  </xsl:template>
</xsl:stylesheet>

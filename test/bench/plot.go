package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// series is one line of a chart.
type series struct {
	name string
	xs   []float64
	ys   []float64
}

var palette = []color.RGBA{
	{0x1f, 0x77, 0xb4, 0xff}, {0x2c, 0xa0, 0x2c, 0xff}, {0xd6, 0x27, 0x28, 0xff}, {0xff, 0x7f, 0x0e, 0xff},
}

type canvas struct{ img *image.RGBA }

func (c canvas) text(x, y int, s string, col color.Color) {
	d := &font.Drawer{Dst: c.img, Src: image.NewUniform(col), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

// line draws a 2-pixel line with Bresenham's algorithm.
func (c canvas) line(x0, y0, x1, y1 int, col color.Color) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		c.img.Set(x0, y0, col)
		c.img.Set(x0, y0+1, col)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}

// panel draws one chart with axes, ticks and a legend into rect r.
func (c canvas) panel(r image.Rectangle, title, xlabel, ylabel string, ss []series) {
	black, grey := color.RGBA{0, 0, 0, 255}, color.RGBA{0xdd, 0xdd, 0xdd, 255}
	left, right, top, bottom := r.Min.X+60, r.Max.X-20, r.Min.Y+30, r.Max.Y-45
	xmax, ymax := 0.0, 0.0
	for _, s := range ss {
		for i := range s.xs {
			xmax, ymax = math.Max(xmax, s.xs[i]), math.Max(ymax, s.ys[i])
		}
	}
	if xmax == 0 {
		xmax = 1
	}
	ymax = niceCeil(ymax * 1.1)
	px := func(x float64) int { return left + int(x/xmax*float64(right-left)) }
	py := func(y float64) int { return bottom - int(y/ymax*float64(bottom-top)) }
	for i := 0; i <= 5; i++ {
		y := ymax * float64(i) / 5
		c.line(left, py(y), right, py(y), grey)
		c.text(r.Min.X+5, py(y)+4, trimFloat(y), black)
		x := xmax * float64(i) / 5
		c.text(px(x)-10, bottom+15, trimFloat(x), black)
	}
	c.line(left, top, left, bottom, black)
	c.line(left, bottom, right, bottom, black)
	c.text(left, r.Min.Y+18, title+" ("+ylabel+")", black)
	c.text((left+right)/2-len(xlabel)*3, bottom+35, xlabel, black)
	for i, s := range ss {
		col := palette[i%len(palette)]
		for j := 1; j < len(s.xs); j++ {
			c.line(px(s.xs[j-1]), py(s.ys[j-1]), px(s.xs[j]), py(s.ys[j]), col)
		}
		for j := range s.xs {
			draw.Draw(c.img, image.Rect(px(s.xs[j])-3, py(s.ys[j])-3, px(s.xs[j])+3, py(s.ys[j])+3), image.NewUniform(col), image.Point{}, draw.Src)
		}
		lx, ly := right-140, top+15+16*i
		draw.Draw(c.img, image.Rect(lx, ly-8, lx+10, ly), image.NewUniform(col), image.Point{}, draw.Src)
		c.text(lx+14, ly, s.name, col)
	}
}

func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func trimFloat(v float64) string {
	if v == math.Trunc(v) || v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2g", v)
}

// writePlot draws the scaling curves side by side into path.
func writePlot(path string, left, right []series, leftTitle, rightTitle string) error {
	img := image.NewRGBA(image.Rect(0, 0, 1200, 480))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	c := canvas{img}
	c.panel(image.Rect(0, 0, 600, 480), leftTitle, "containers already present (4 mappings each)", "ms", left)
	c.panel(image.Rect(600, 0, 1200, 480), rightTitle, "mappings installed (4 per container)", "1 = the rate with 1 mapping", right)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return png.Encode(f, img)
}

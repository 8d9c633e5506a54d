/*
 * A Cortex-M0 port of the framebridge slave, as small as it gets: the porting guide in code.
 * Built by `make -C firmware m0` only to measure flash and RAM (arm-none-eabi-size); the UART
 * and timer registers are placeholders for your MCU's (here: a generic memory-mapped UART).
 *
 *   UART RX interrupt -> fb_slave_rx() -> (reply bytes) -> TX buffer drained by the TX interrupt
 *   1 ms SysTick       -> fb_slave_tick() (the inter-frame gap)
 */
#include "fb_slave.h"

/* Placeholder peripheral: replace with your MCU's UART data/status registers. */
#define UART_DATA (*(volatile uint32_t *)0x40004000u)
#define UART_TX_READY (*(volatile uint32_t *)0x40004004u)

/* The register map (in flash) and its values (in RAM): thermo's map. */
static const fb_reg_def defs[] = {
    {0, FB_REG_SIGNED, 0, 0},
    {1, 0, 0, 0},
    {2, FB_REG_WRITABLE | FB_REG_SIGNED | FB_REG_MIN | FB_REG_MAX, 500, 3500},
    {3, FB_REG_WRITABLE | FB_REG_MIN | FB_REG_MAX, 0, 1},
    {4, 0, 0, 0},
    {5, 0, 0, 0},
};
static uint16_t values[6];
static const fb_identity identity = {"THERMO-1-C", {0, 1, 0}, 0x54480001u};
static fb_slave slave;

/* Replies wait here for the TX interrupt. The bus is half-duplex request/reply, so one
 * reply at a time: a new one is only produced after a request, i.e. after this drained. */
static uint8_t tx[FB_MAX_FRAME];
static volatile size_t tx_len;
static volatile size_t tx_pos;

static void start_tx(size_t n)
{
    tx_pos = 0;
    tx_len = n;
    /* enable the TX-empty interrupt here (or start a DMA transfer of tx[0..n)) */
}

void uart_rx_irq(void);
void uart_tx_irq(void);
void systick_irq(void);

void uart_rx_irq(void)
{
    size_t n = fb_slave_rx(&slave, (uint8_t)UART_DATA, tx, tx_len == tx_pos ? sizeof tx : 0);
    if (n > 0) {
        start_tx(n);
    }
}

void uart_tx_irq(void)
{
    if (tx_pos < tx_len && UART_TX_READY) {
        UART_DATA = tx[tx_pos++];
    }
}

void systick_irq(void) /* every 1 ms: 1 ms of quiet ends a partial frame at >= 38400 baud */
{
    size_t n = fb_slave_tick(&slave, tx, tx_len == tx_pos ? sizeof tx : 0);
    if (n > 0) {
        start_tx(n);
    }
}

int main(void)
{
    fb_regs regs;
    regs.defs = defs;
    regs.values = values;
    regs.count = 6;
    values[2] = 2200;
    if (!fb_slave_init(&slave, 1, &identity, regs, NULL, 0, 1)) {
        for (;;) {
        }
    }
    for (;;) {
        /* application: update values[] from the sensors; sleep until the next interrupt */
        values[4]++;
        uart_rx_irq(); /* in a real port these are vector-table entries, not calls */
        uart_tx_irq();
        systick_irq();
    }
}

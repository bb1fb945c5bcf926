#!/usr/bin/perl
# Verify the message on stdin with Mail::DKIM, taking key records from a file of `name value`
# lines instead of DNS (replacing Mail::DKIM::DNS::query, as Mail::DKIM's own t/verifier.t does).
# Prints the result ("pass", "fail", ...) and exits 0 only on pass.
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Net::DNS;

my %records;
open(my $fh, '<', $ARGV[0]) or die "cannot read $ARGV[0]: $!";
while (my $line = <$fh>) {
    chomp $line;
    my ($name, $value) = split / /, $line, 2;
    next unless defined $value;
    $name =~ s/\.$//;
    $records{lc $name} = $value;
}
close $fh;

{
    no warnings 'redefine';
    *Mail::DKIM::DNS::query = sub {
        my ($name, $type) = @_;
        $name =~ s/\.$//;
        my $value = $records{lc $name};
        return () unless defined $value && $type eq 'TXT';
        my @strings = unpack('(a255)*', $value);
        my $rr = Net::DNS::RR->new(name => $name, type => 'TXT', txtdata => \@strings);
        return ($rr);
    };
}

my $dkim = Mail::DKIM::Verifier->new();
binmode STDIN;
while (my $line = <STDIN>) {
    $line =~ s/\r?\n\z/\015\012/;
    $dkim->PRINT($line);
}
$dkim->CLOSE;
print $dkim->result, "\n";
exit($dkim->result eq 'pass' ? 0 : 1);
